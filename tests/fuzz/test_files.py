"""Fuzzing the files nasir reads (issue 16): architecture JSON, IR JSON of the standard spaces, and
the metadata of every driver's checkpoint, mutated structurally (values replaced by other JSON,
keys deleted or added, numbers pushed to extremes, containers wrapped) and as text.

Every case must end in success or a ``NasirError`` (exit status 2 at the CLI) within a time and
memory bound; any other exception fails the test with the input in hypothesis' report. Mutated
checkpoints are saved with a valid checksum, so it is the metadata validation that is tested.

CI runs a short derandomized profile (well under a minute); ``NASIR_FUZZ=long`` runs the long one
(about 60,000 cases) with fresh randomness (profiles in conftest.py, bounds in _harness.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nasir.api import compile_file, load_graph
from nasir.checkpoint import load_checkpoint, save_checkpoint
from nasir.diagnostics import NasirError
from nasir.io import parse_json
from nasir.ir.arch import read_arch, resolve_arch
from nasir.ir.dot import to_dot
from nasir.ir.graph import Graph

from ._harness import bounded, examples, exercise

SPACES = {
    "nb201": ("std/nb201.nas", {"C": 4, "N": 1}),
    "darts": ("std/darts.nas", {"C": 4, "layers": 2, "steps": 2, "multiplier": 2}),
    "resnet18": ("std/resnet18.nas", {"width": 4}),
    "vgg16": ("std/vgg16.nas", {"cfg": [8, "M", 16, "M"]}),
    "dna": (str(Path(__file__).parents[1] / "dna" / "tiny_dna.nas"), {}),
}


# -- mutations -----------------------------------------------------------------------------------
EXTREMES = [0, 1, -1, -3, -5, 2, 3, 7, 99_999, 10**10, 10**12, 2**63, 10**400, 0.5, -0.0, 1e308, float("nan"),
            float("inf"), True, False, None, "", "abc", "none", "<b>x</b>", "..", "$tensor", "$dict"]
scalars = st.one_of(st.sampled_from(EXTREMES), st.integers(-(10**6), 10**6), st.floats(), st.text(max_size=6))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                                max_size=3), max_leaves=6)


def _paths(doc: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*path, i))


def _at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _mutate_once(doc: Any, data: st.DataObject) -> Any:
    paths = list(_paths(doc))
    numbers = [p for p in paths if p and isinstance(_at(doc, p), (int, float))]
    if numbers and data.draw(st.booleans(), label="a number"):  # sizes, strides, steps: where ranges matter
        paths = numbers
    path = data.draw(st.sampled_from(paths), label="path")
    if not path:
        return data.draw(st.sampled_from(["replace", "wrap"]).flatmap(
            lambda op: json_values if op == "replace" else st.just([doc])), label="new document")
    parent = _at(doc, path[:-1])
    key, value = path[-1], parent[path[-1]]
    op = data.draw(st.sampled_from(["replace", "extreme", "delete", "wrap", "duplicate", "add-key", "number"]), label="op")
    if op == "replace":
        parent[key] = data.draw(json_values, label="value")
    elif op == "extreme":
        parent[key] = data.draw(st.sampled_from(EXTREMES), label="value")
    elif op == "delete":
        del parent[key]
    elif op == "wrap":
        parent[key] = data.draw(st.sampled_from([[value], {"x": value}, [value, value]]), label="wrapped")
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(value))
    elif op == "add-key" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=6), label="key")] = data.draw(json_values, label="value")
    elif op == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        factor = data.draw(st.sampled_from([-1, 0, 2, 10**6, 10**15]), label="factor")
        parent[key] = value * factor if value == value else 0
    return doc


def mutate(doc: Any, data: st.DataObject) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        doc = _mutate_once(doc, data)
    return doc


def mutate_text(text: str, data: st.DataObject) -> str:
    at = data.draw(st.integers(0, len(text)), label="at")
    cut = data.draw(st.integers(0, 20), label="cut")
    insert = data.draw(st.sampled_from(["", "[", "]", "{", "}", '"', ",", ":", "\\", "0" * 5000, "[" * 500, "\x00", "é"])
                       | st.text(max_size=4), label="insert")
    return text[:at] + insert + text[at + cut:]


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, allow_nan=True))


# -- IR JSON -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ir_docs() -> dict[str, Any]:
    return {name: json.loads(compile_file(src, **kw).to_json()) for name, (src, kw) in SPACES.items()}


@given(data=st.data())
@examples(ci=120, long=20_000)
def test_mutated_ir_json(ir_docs, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(ir_docs)), label="space")
    path = tmp_path_factory.mktemp("ir") / f"{name}.json"
    if data.draw(st.booleans(), label="as text"):
        path.write_text(mutate_text(json.dumps(ir_docs[name]), data))
    else:
        _write_json(path, mutate(ir_docs[name], data))
    with bounded():
        try:
            graph = load_graph(path)
            to_dot(graph)
            exercise(graph)
        except NasirError as e:
            e.render()


# -- architecture JSON ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201() -> Graph:
    src, kw = SPACES["nb201"]
    return compile_file(src, **kw)


@given(data=st.data())
@examples(ci=200, long=20_000)
def test_mutated_architecture_files(nb201, tmp_path_factory, data):
    from nasir.passmanager import PassManager

    picks = {name: param.candidates[i % param.size] if i % 2 else i % param.size
             for i, (name, param) in enumerate(sorted(nb201.arch.items()))}
    doc = data.draw(st.sampled_from([{"arch": picks}, picks]), label="form")
    path = tmp_path_factory.mktemp("arch") / "arch.json"
    if data.draw(st.booleans(), label="as text"):
        path.write_text(mutate_text(json.dumps(doc), data))
    else:
        _write_json(path, mutate(doc, data))
    with bounded():
        try:
            resolve_arch(nb201, read_arch(path))
            PassManager.parse(f"fix-arch{{arch={path}}},canonicalize,dead-code").run(nb201)
        except NasirError as e:
            e.render()


@given(text=st.text(alphabet='[]{}",:0123456789.eE-+ ntrufalse\\', max_size=300))
@examples(ci=200, long=20_000)
def test_json_text_is_decoded_or_refused(text):
    with bounded():
        try:
            parse_json(text, "fuzz.json")
        except NasirError as e:
            e.render()


# -- checkpoints ---------------------------------------------------------------------------------
def _retouched(base: Path, tmp: Path, data: st.DataObject) -> Path:
    """A copy of checkpoint ``base`` whose metadata is mutated (and whose checksum is valid)."""
    tensors, meta = load_checkpoint(base)
    path = tmp / base.name
    save_checkpoint(path, tensors, mutate(meta, data))
    return path


def _search_run(checkpoint: Path, resume: bool, steps: int = 3) -> None:
    from nasir.data.tinyshapes import load_tiny
    from nasir.lowering import lower
    from nasir.search.darts import SearchConfig, SupernetSearch

    src, kw = SPACES["darts"]
    x, y = load_tiny("train")
    search = SupernetSearch(lower(compile_file(src, **kw), "supernet", seed=0),
                            SearchConfig(steps=steps, batch_size=8, save_every=1))
    search.run((x[:32], y[:32]), (x[32:64], y[32:64]), checkpoint=checkpoint, resume=resume, progress=False)


class Killed(Exception):
    """Stops a training run part way, as a kill would (its last checkpoint stays)."""


def _dance_trainer():
    from nasir.dance.gated import GatedNetwork
    from nasir.dance.train import DanceConfig, DanceTrainer
    from nasir.data.tinyshapes import load_tiny
    from nasir.passmanager import PassManager

    src, kw = SPACES["resnet18"]
    graph = PassManager.parse("dance-gates{budget=0.5}").run(compile_file(src, **kw))
    x, y = load_tiny("train")
    config = DanceConfig(stage1_steps=1, stage2_steps=3, batch_size=8, save_every=1)
    return DanceTrainer(GatedNetwork(graph, seed=0), config, progress=False), (x[:16], y[:16])


def _dna_block():
    from torch import nn

    from nasir.dna.distill import DistillConfig
    from nasir.dna.space import Block, Cell

    torch.manual_seed(0)
    layers = [[nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(3, 4, 5, 2, 2)], [nn.Conv2d(4, 4, 1), nn.Identity()], nn.Conv2d(4, 8, 1)]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 16, 16, generator=g)
    y = torch.nn.functional.conv2d(x, torch.randn(8, 3, 3, 3, generator=g) * 0.3, stride=2, padding=1)
    return Block([Cell(layers)], name="b"), x, y, DistillConfig(steps=4, batch_size=8, checkpoint_every=1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One real checkpoint of every driver, each part way through its run."""
    root = tmp_path_factory.mktemp("checkpoints")
    out = {name: root / f"{name}.safetensors" for name in ("search", "dance", "dna-block", "dna-teacher")}
    _make_checkpoints(out)
    return out


def _make_checkpoints(out: dict[str, Path]) -> None:
    from nasir.dna.distill import Interrupted, train_block
    from nasir.dna.mbconv import BlockSpec, ChainNet, NetSpec
    from nasir.dna.pipeline import save_teacher

    _search_run(out["search"], resume=False, steps=2)
    trainer, data = _dance_trainer()
    real_step2 = trainer._step2

    def step2_then_kill(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        if trainer.log.step == 1:
            raise Killed
        return real_step2(x, y)

    trainer._step2 = step2_then_kill
    with pytest.raises(Killed):
        trainer.train(data, out["dance"])
    block, x, y, config = _dna_block()
    with pytest.raises(Interrupted):
        train_block(block, x, y, config, checkpoint=out["dna-block"], stop_after=2)
    save_teacher(out["dna-teacher"], ChainNet(NetSpec([BlockSpec([(3, 2)], 8, 8, 2)], stem=8)), 0.5)


def _resume_steps(kind: str, path: Path) -> list:
    """The ways each driver reads its checkpoint, one call each."""
    if kind == "search":
        return [lambda: _search_run(path, resume=True)]
    if kind == "dance":
        from nasir.dance.train import network_from_checkpoint

        def resume_training() -> None:
            trainer, data = _dance_trainer()
            trainer.train(data, path, resume=True)

        return [lambda: network_from_checkpoint(path), resume_training]
    if kind == "dna-block":
        from nasir.dna.distill import load_trained_block, train_block

        def resume_distillation() -> None:
            block, x, y, config = _dna_block()
            train_block(block, x, y, config, checkpoint=path)

        return [lambda: load_trained_block(path, _dna_block()[0]), resume_distillation]
    from nasir.dna.pipeline import load_teacher

    return [lambda: load_teacher(path)]


@pytest.mark.parametrize("kind", ["search", "dance", "dna-block", "dna-teacher"])
@given(data=st.data())
@examples(ci=12, long=1_000)
def test_mutated_checkpoint_metadata(checkpoints, tmp_path_factory, kind, data):
    tensors, meta = load_checkpoint(checkpoints[kind])
    path = tmp_path_factory.mktemp(kind) / "mutated.safetensors"
    save_checkpoint(path, tensors, mutate(meta, data))  # a valid checksum: the metadata is what is tested
    for step in _resume_steps(kind, path):
        with bounded():
            try:
                step()
            except NasirError as e:
                e.render()
