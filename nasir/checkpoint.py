"""Checkpoints without pickle: tensors in safetensors, everything else as JSON metadata.

Writes are atomic (temporary file + rename), so a kill mid-save keeps the previous checkpoint;
a corrupt or foreign file raises ``NasirError`` (exit status 2 in the CLI) instead of a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nasir.diagnostics import NasirError
from nasir.io import atomic_write

FORMAT = "nasir-checkpoint-1"


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


def unflatten_state(meta: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(meta, dict) and "$tensor" in meta:
        return tensors[meta["$tensor"]]
    if isinstance(meta, dict) and "$dict" in meta:
        return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in meta["$dict"]}
    if isinstance(meta, list):
        return [unflatten_state(v, tensors) for v in meta]
    return meta


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "meta": json.dumps(meta)}
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(clean, tmp, metadata=payload))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise NasirError(f"no checkpoint at {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise NasirError(f"{path}: corrupt or unreadable checkpoint ({e})") from None
    if header.get("format") != FORMAT:
        raise NasirError(f"{path}: not a nasir checkpoint (format {header.get('format')!r})")
    try:
        meta = json.loads(header.get("meta", "{}"))
    except json.JSONDecodeError:
        raise NasirError(f"{path}: checkpoint metadata is corrupt") from None
    return tensors, meta


def load_checkpoint_of(path: str | Path, kind: str, what: str, error: type[NasirError] = NasirError,
                       need: tuple[str, ...] = ()) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``load_checkpoint`` for one ``meta["kind"]`` (and its ``need``ed metadata keys); every
    problem becomes ``error`` (a ``NasirError`` subclass of the caller's family), never a traceback."""
    try:
        tensors, meta = load_checkpoint(path)
    except NasirError as e:
        raise error(e.message, e.loc, e.hint) from None
    if meta.get("kind") != kind or any(k not in meta for k in need):
        raise error(f"{path}: not a {what} checkpoint")
    return tensors, meta
