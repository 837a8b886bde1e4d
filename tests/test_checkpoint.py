"""Checkpoints as untrusted data (issue 16): checksums, metadata that is valid JSON of the wrong
type, optimizer and scheduler states that do not fit, networks described bigger than their weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from nasir.checkpoint import (
    FORMAT,
    build_for_state,
    flatten_state,
    load_checkpoint,
    restore_optimizer,
    restore_scheduler,
    save_checkpoint,
)
from nasir.diagnostics import NasirError


def _flip_last_tensor_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_tensor_data_is_found(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.arange(8.0)}, {"kind": "x"})
    assert torch.equal(load_checkpoint(path)[0]["w"], torch.arange(8.0))
    _flip_last_tensor_byte(path)
    with pytest.raises(NasirError, match="checksum"):
        load_checkpoint(path)


def test_checkpoints_without_a_checksum_are_accepted_unchecked(tmp_path):
    """Written before checksums existed: tensors are taken as they are, metadata still validated."""
    path = tmp_path / "old.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"format": FORMAT, "meta": json.dumps({"kind": "x"})})
    _flip_last_tensor_byte(path)
    tensors, meta = load_checkpoint(path)
    assert meta == {"kind": "x"} and tensors["w"].shape == (2,)


@pytest.mark.parametrize("meta", ["[]", "null", "3", '"text"', "[" * 5000 + "]" * 5000, "{"])
def test_metadata_must_be_a_json_object(tmp_path, meta):
    path = tmp_path / "c.safetensors"
    save_file({"w": torch.ones(1)}, str(path), metadata={"format": FORMAT, "meta": meta})
    with pytest.raises(NasirError, match="metadata"):
        load_checkpoint(path)


def _adam():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    return p, opt


@pytest.mark.parametrize("damage", ["lr-text", "missing-entry", "wrong-shape", "unknown-param", "not-pairs", "no-tensor"])
def test_optimizer_states_that_do_not_fit_are_refused(damage):
    _, opt = _adam()
    tensors: dict[str, torch.Tensor] = {}
    flat = flatten_state("opt", opt.state_dict(), tensors)
    groups = flat["$dict"][1][1][0]["$dict"]  # [[key, value], ...] of the first parameter group
    state = flat["$dict"][0][1]["$dict"][0][1]["$dict"]  # entries of parameter 0
    if damage == "lr-text":
        next(pair for pair in groups if pair[0] == "lr")[1] = "abc"
    elif damage == "missing-entry":
        state.pop()
    elif damage == "wrong-shape":
        tensors[next(pair for pair in state if pair[0] == "exp_avg")[1]["$tensor"]] = torch.zeros(7)
    elif damage == "unknown-param":
        flat["$dict"][0][1]["$dict"][0][0] = 5
    elif damage == "not-pairs":
        flat["$dict"][0][1]["$dict"] = [[1, 2, 3]]
    else:
        flat["$dict"][0][1]["$dict"][0][1]["$dict"][0][1] = {"$tensor": "nowhere"}
    _, fresh = _adam()
    before = {k: v.clone() for k, v in fresh.state[fresh.param_groups[0]["params"][0]].items()}
    with pytest.raises(NasirError, match="optimizer state does not fit"):
        restore_optimizer(fresh, flat, tensors, "ck")
    after = fresh.state[fresh.param_groups[0]["params"][0]]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_fitting_optimizer_state_round_trips():
    _, opt = _adam()
    tensors: dict[str, torch.Tensor] = {}
    flat = json.loads(json.dumps(flatten_state("opt", opt.state_dict(), tensors)))
    p = torch.nn.Parameter(torch.ones(3))
    fresh = torch.optim.Adam([p], lr=0.1)
    restore_optimizer(fresh, flat, tensors, "ck")
    assert torch.equal(fresh.state[p]["exp_avg"], opt.state[opt.param_groups[0]["params"][0]]["exp_avg"])


def test_a_scheduler_state_must_be_this_runs_schedule_at_the_saved_position():
    def one_cycle():
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))], lr=0.1)
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)

    saved = one_cycle()
    for _ in range(3):
        saved.optimizer.step()
        saved.step()
    state = json.loads(json.dumps(saved.state_dict()))
    restore_scheduler(one_cycle(), state, 3, "ck")
    with pytest.raises(NasirError, match="at step 3"):
        restore_scheduler(one_cycle(), state, 4, "ck")
    with pytest.raises(NasirError, match="total_steps"):
        restore_scheduler(one_cycle(), {**state, "total_steps": 10**12}, 3, "ck")
    with pytest.raises(NasirError, match="_last_lr"):
        restore_scheduler(one_cycle(), {**state, "_last_lr": "abc"}, 3, "ck")


def test_a_network_described_bigger_than_its_weights_is_refused_before_allocation():
    weights = torch.nn.Linear(4, 2).state_dict()
    built = build_for_state(lambda: torch.nn.Linear(4, 2), weights, "ck")
    assert torch.equal(built.weight, weights["weight"])
    with pytest.raises(NasirError, match="do not fit"):
        build_for_state(lambda: torch.nn.Linear(10**6, 10**6), weights, "ck")  # 4 TB if it were allocated
    with pytest.raises(NasirError, match="invalid"):
        build_for_state(lambda: torch.nn.Linear(-4, 2), weights, "ck")


@pytest.mark.parametrize("key, value, message", [("betas", [0.9, 1.998], "beta"), ("lr", -0.1, "learning rate"),
                                                 ("eps", -1.0, "epsilon")])
def test_optimizer_options_out_of_range_are_refused(key, value, message):
    """Right JSON kind, wrong range: Adam's own checks refuse them at load instead of a complex number
    inside a later step (a beta of 1.998 from the long fuzz profile)."""
    from nasir.checkpoint import _check_optimizer_state

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    state = opt.state_dict()
    state["param_groups"][0][key] = value
    with pytest.raises(ValueError, match=message):
        _check_optimizer_state(opt, state)
    _check_optimizer_state(opt, opt.state_dict())  # the unchanged state passes
