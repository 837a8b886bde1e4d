"""Checkpoints without pickle: tensors in safetensors, everything else as JSON metadata.

Writes are atomic (temporary file + rename), so a kill mid-save keeps the previous checkpoint.
Reads trust nothing: a corrupt or foreign file, tensors whose SHA-256 differs from the one saved
with them (a flipped bit), and metadata that is valid JSON of the wrong shape all raise a
``NasirError`` (exit status 2 in the CLI) before anything is restored, run or written. Each driver
describes its metadata with a ``CheckpointMeta`` model (strict types, no unknown keys) and checks
positions such as ``step`` against the run; optimizer and scheduler states are checked against the
live objects they are loaded into (``restore_optimizer``, ``restore_scheduler``).

Checkpoints written before checksums existed carry no ``sha256`` entry; they are accepted without
a check of their tensors (their metadata is still validated).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from nasir.diagnostics import NasirError
from nasir.io import Writer, atomic_write, parse_json

FORMAT = "nasir-checkpoint-1"

#: Scheduler entries that move with every step; everything else must equal a fresh scheduler's.
_SCHEDULER_POSITION = ("last_epoch", "_step_count", "_last_lr", "_is_initial", "_get_lr_called_within_step")

T = TypeVar("T")


class CheckpointMeta(BaseModel):
    """Base of every driver's checkpoint metadata: strict types, no unknown keys, a ``kind``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: str


# -- tensors -------------------------------------------------------------------------------------
def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors of a nested state (e.g. an optimizer ``state_dict``) into ``tensors``; return
    the JSON-able remainder with ``{"$tensor": key}`` placeholders."""
    if isinstance(state, torch.Tensor):
        key = prefix
        tensors[key] = state.detach().cpu().contiguous()
        return {"$tensor": key}
    if isinstance(state, dict):
        return {"$dict": [[flatten_state(f"{prefix}.k{i}", k, tensors), flatten_state(f"{prefix}.{i}", v, tensors)]
                          for i, (k, v) in enumerate(state.items())]}
    if isinstance(state, (list, tuple)):
        return [flatten_state(f"{prefix}.{i}", v, tensors) for i, v in enumerate(state)]
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"cannot checkpoint a {type(state).__name__}")


def unflatten_state(meta: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of ``flatten_state``; a ``ValueError`` for anything ``flatten_state`` cannot produce."""
    if isinstance(meta, dict):
        if set(meta) == {"$tensor"}:
            key = meta["$tensor"]
            if not isinstance(key, str) or key not in tensors:
                raise ValueError(f"placeholder names no stored tensor: {key!r}")
            return tensors[key]
        if set(meta) == {"$dict"} and isinstance(meta["$dict"], list):
            out = {}
            for item in meta["$dict"]:
                if not isinstance(item, list) or len(item) != 2:
                    raise ValueError("a $dict entry is not a [key, value] pair")
                key = unflatten_state(item[0], tensors)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise ValueError(f"a $dict key is a {type(key).__name__}")
                out[key] = unflatten_state(item[1], tensors)
            return out
        raise ValueError(f"unexpected object with keys {sorted(meta)[:5]}")
    if isinstance(meta, list):
        return [unflatten_state(v, tensors) for v in meta]
    return meta


# -- files ---------------------------------------------------------------------------------------
def checkpoint_writer(tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> Writer:
    """A writer (for ``nasir.io.atomic_write_all``) of a checkpoint with a checksum of its tensors."""
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    payload = {"format": FORMAT, "meta": json.dumps(meta), "sha256": tensor_digest(clean)}
    return lambda tmp: save_file(clean, tmp, metadata=payload)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    atomic_write(path, checkpoint_writer(tensors, meta))


def load_checkpoint(path: str | Path, error: type[NasirError] = NasirError
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (checksum verified) and metadata (a JSON object) of a nasir checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise error(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:  # one opening: a file replaced meanwhile is not mixed in
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise error(f"{path}: corrupt or unreadable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if header.get("format") != FORMAT:
        raise error(f"{path}: not a nasir checkpoint (format {header.get('format')!r})")
    if "sha256" in header and header["sha256"] != tensor_digest(tensors):
        raise error(f"{path}: checkpoint tensors do not match their checksum (the file is damaged)")
    meta = parse_json(header.get("meta", "{}"), f"{path} (metadata)", "checkpoint metadata", error)
    if not isinstance(meta, dict):
        raise error(f"{path}: checkpoint metadata is a JSON {type(meta).__name__}, not an object")
    return tensors, meta


M = TypeVar("M", bound=CheckpointMeta)


def load_checkpoint_as(path: str | Path, model: type[M], what: str, error: type[NasirError] = NasirError
                       ) -> tuple[dict[str, torch.Tensor], M]:
    """``load_checkpoint`` whose metadata must be a ``model`` (its ``kind`` first: a checkpoint of
    another kind is 'not a WHAT checkpoint'); every problem raises ``error``."""
    tensors, meta = load_checkpoint(path, error)
    kind = model.model_fields["kind"].default
    if meta.get("kind", kind) != kind:
        raise error(f"{path}: not a {what} checkpoint")
    return tensors, validate_data(model, meta, f"{path}: {what} checkpoint", error)


def validate_data(schema: type[T], data: Any, where: str, error: type[NasirError] = NasirError) -> T:
    """``data`` (decoded JSON) as ``schema`` (a pydantic model or a dataclass), validated strictly:
    no coercion of ``"3"`` or ``true`` into numbers, no unknown keys."""
    try:
        return TypeAdapter(schema).validate_json(json.dumps(data), strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "top level"
        raise error(f"{where}: invalid metadata at {at}: {first['msg']}") from None


# -- optimizer and scheduler states --------------------------------------------------------------
def restore_optimizer(opt: torch.optim.Optimizer, flat: Any, tensors: Mapping[str, torch.Tensor], where: str,
                      error: type[NasirError] = NasirError) -> None:
    """Load a flattened optimizer state into ``opt`` after checking it fits: the same parameter
    groups with the same entries, per-parameter states with exactly the entries and tensor shapes
    that ``opt`` itself creates (found by one step of a probe optimizer)."""
    try:
        state = unflatten_state(flat, tensors)
        _check_optimizer_state(opt, state)
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise error(f"{where}: optimizer state does not fit ({str(e).splitlines()[0][:300]})") from None


def _check_optimizer_state(opt: torch.optim.Optimizer, state: Any) -> None:
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise ValueError("expected an object with 'state' and 'param_groups'")
    fresh = opt.state_dict()["param_groups"]
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(fresh):
        raise ValueError(f"expected {len(fresh)} parameter groups")
    owner: dict[int, tuple[torch.Tensor, int]] = {}
    for gi, (group, want) in enumerate(zip(groups, fresh)):
        if not isinstance(group, dict) or set(group) != set(want):
            raise ValueError(f"parameter group {gi} has other entries than {sorted(want)}")
        for key, value in want.items():
            if key == "params" and group[key] != value:
                raise ValueError(f"parameter group {gi} lists other parameters")
            if not same_json_kind(group[key], value):
                raise ValueError(f"parameter group {gi}: {key} is {group[key]!r}")
        _check_option_ranges(opt, group)
        owner.update({pid: (p, gi) for pid, p in zip(want["params"], opt.param_groups[gi]["params"])})
    if not isinstance(state["state"], dict):
        raise ValueError("'state' is not an object")
    probes: dict[int, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        if pid not in owner or not isinstance(entries, dict):
            raise ValueError(f"state for unknown parameter {pid!r}")
        param, gi = owner[pid]
        want = probes.setdefault(gi, _probe_state(opt, gi))
        if set(entries) != set(want):
            raise ValueError(f"state of parameter {pid} has entries {sorted(entries)}, expected {sorted(want)}")
        for key, value in entries.items():
            if isinstance(want[key], torch.Tensor):
                shape = torch.Size([]) if want[key].dim() == 0 else param.shape
                if not isinstance(value, torch.Tensor) or value.shape != shape or value.dtype.is_floating_point \
                        != want[key].dtype.is_floating_point:
                    raise ValueError(f"state {key!r} of parameter {pid} is not a tensor of shape {list(shape)}")
            elif not same_json_kind(value, want[key]):
                raise ValueError(f"state {key!r} of parameter {pid} is {value!r}")


def _check_option_ranges(opt: torch.optim.Optimizer, group: dict[str, Any]) -> None:
    """Let the optimizer's own constructor range-check a loaded group's options (a beta of 1.998 or a
    negative learning rate is the right kind of JSON but fails later, inside a step); ValueError if not."""
    accepted = inspect.signature(type(opt).__init__).parameters
    options = {k: v for k, v in group.items() if k != "params" and k in accepted}
    type(opt)([torch.zeros(1, requires_grad=True)], **options)


def _probe_state(opt: torch.optim.Optimizer, group: int) -> dict[str, Any]:
    """The per-parameter state ``opt``'s class creates for group ``group``'s options: one step of a
    copy on a one-element parameter (a single parameter element: the state's tensors are either
    scalars or shaped like the parameter)."""
    probe_param = torch.zeros(1, requires_grad=True)
    probe_param.grad = torch.zeros(1)
    options = {k: v for k, v in opt.param_groups[group].items() if k != "params"}
    probe = type(opt)([{"params": [probe_param], **options}])
    probe.step()
    return dict(probe.state[probe_param])


def restore_scheduler(sched: torch.optim.lr_scheduler.LRScheduler, state: Any, position: int, where: str,
                      error: type[NasirError] = NasirError) -> None:
    """Load a scheduler state that must equal ``sched``'s own (this run's schedule) in everything
    but its position, which must be ``position`` steps."""
    want = json.loads(json.dumps(sched.state_dict()))
    problem = None
    if not isinstance(state, dict) or set(state) != set(want):
        problem = f"expected entries {sorted(want)}"
    else:
        fixed = [k for k in want if k not in _SCHEDULER_POSITION and state[k] != want[k]]
        moving = [k for k in _SCHEDULER_POSITION if k in want and not same_json_kind(state[k], want[k])]
        if fixed or moving:
            problem = f"{(fixed + moving)[0]} differs from this run's schedule"
        elif state.get("last_epoch", position) != position or state.get("_step_count", position + 1) != position + 1:
            problem = f"it is at step {state.get('last_epoch')}, the checkpoint at step {position}"
    if problem is not None:
        raise error(f"{where}: learning-rate schedule does not fit ({problem})")
    sched.load_state_dict(state)


def same_json_kind(value: Any, like: Any) -> bool:
    """``value`` has the JSON shape of ``like``: the same scalar type (``bool`` is not a number),
    lists (or tuples) of the same length element by element, objects with the same keys."""
    if isinstance(like, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(like) and all(map(same_json_kind, value, like))
    if isinstance(like, dict):
        return isinstance(value, dict) and set(value) == set(like) and all(same_json_kind(value[k], like[k]) for k in like)
    if isinstance(like, torch.Tensor):
        return isinstance(value, torch.Tensor)
    return type(value) is type(like)


def build_for_state(build: Callable[[], torch.nn.Module], tensors: Mapping[str, torch.Tensor], where: str,
                    error: type[NasirError] = NasirError) -> torch.nn.Module:
    """``build()`` a module for saved weights ``tensors`` and load them. The module is first built
    on the ``meta`` device (no memory) and its state compared with the tensors, so metadata that
    describes a huge or different network is refused before anything is allocated."""
    try:
        with torch.device("meta"):
            shapes = {k: (v.shape, v.dtype) for k, v in build().state_dict().items()}
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as e:
        raise error(f"{where}: the stored network description is invalid ({str(e).splitlines()[0][:200]})") from None
    stored = {k: (v.shape, v.dtype) for k, v in tensors.items()}
    if shapes != stored:
        diff = sorted(set(shapes).symmetric_difference(stored)) or [k for k in shapes if shapes[k] != stored[k]]
        raise error(f"{where}: weights do not fit the stored network description (e.g. {diff[0]!r})")
    module = build()
    module.load_state_dict(dict(tensors))
    return module
