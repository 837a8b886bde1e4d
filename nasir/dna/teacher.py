"""Teachers cut into blocks with ``torch.fx``, and their block features cached on disk.

DNA supervises student block k with the teacher's block k output, fed the teacher's block k-1
output (Eq. 6). Any traceable ``nn.Module`` works as a teacher: it is traced once, and the graph
is cut after the nodes named as block boundaries into stage modules ``stage_k`` that map the
previous boundary's value to the next one. A cut is valid only where a single value is live (no
skip connection crosses it); otherwise a ``DNAError`` names the crossing value.

``auto_boundaries`` proposes cuts where the feature shape changes (stride or channel changes, the
"stage boundaries" the paper matches its blocks to). ``cache_features`` runs the teacher over a
dataset once and stores every boundary's features in one safetensors file, so that the blocks
can then be trained independently (and in parallel) without the teacher.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from nasir.checkpoint import tensor_digest
from nasir.dna.errors import DNAError
from nasir.io import parse_json

CACHE_FORMAT = "nasir-dna-features-1"


def trace(model: nn.Module) -> fx.GraphModule:
    if isinstance(model, fx.GraphModule):
        return model
    try:
        return fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types for untraceable code
        raise DNAError(f"cannot trace the teacher with torch.fx: {type(e).__name__}: {e}") from None


def _live_after(nodes: list[fx.Node], pos: int) -> list[fx.Node]:
    """Values produced at or before ``pos`` that are used after it."""
    later = set(nodes[pos + 1:])
    return [n for n in nodes[:pos + 1]
            if n.op not in ("output", "get_attr") and any(u in later for u in n.users)]


def cut_points(gm: fx.GraphModule) -> list[str]:
    """Names of nodes after which exactly one value (that node's) is live: legal block cuts."""
    nodes = list(gm.graph.nodes)
    points = []
    for i, n in enumerate(nodes):
        if n.op in ("placeholder", "output"):
            continue
        live = _live_after(nodes, i)
        if live == [n]:
            points.append(n.name)
    return points


def auto_boundaries(model: nn.Module, example: torch.Tensor, max_blocks: int | None = None) -> list[str]:
    """Block boundaries at the last cut point of every run of equal feature shape.

    Only 4-d feature maps larger than 1x1 count (the classifier head is not a block). With ``max_blocks`` the
    latest boundaries are kept (early stages are the cheap ones students share with the stem).
    """
    gm = trace(model)
    was_training = gm.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(example)
    gm.train(was_training)
    by_name = {n.name: n for n in gm.graph.nodes}
    shapes = []
    for name in cut_points(gm):
        meta = by_name[name].meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape") or len(meta.shape) != 4 or meta.shape[2] * meta.shape[3] == 1:
            continue  # not a feature map, or a globally pooled one (the classifier head)
        shapes.append((name, tuple(meta.shape[1:])))
    bounds = [name for k, (name, shape) in enumerate(shapes) if k + 1 == len(shapes) or shapes[k + 1][1] != shape]
    if max_blocks is not None:
        bounds = bounds[-max_blocks:]
    return bounds


def _resolve(gm: fx.GraphModule, boundary: str) -> fx.Node:
    """A boundary names an fx node, or a submodule whose (last) call ends the block."""
    for n in gm.graph.nodes:
        if n.name == boundary:
            return n
    calls = [n for n in gm.graph.nodes
             if (n.op == "call_module" and n.target == boundary) or boundary in n.meta.get("nn_module_stack", {})]
    if calls:
        return calls[-1]
    raise DNAError(f"teacher has no node or submodule {boundary!r}",
                   hint="list legal cuts with nasir.dna.teacher.cut_points(trace(model))")


class TeacherBlocks(nn.Module):
    """The teacher as ``stages[0] .. stages[N-1]`` (one per boundary) plus the remainder ``head``."""

    def __init__(self, model: nn.Module, boundaries: Sequence[str]):
        super().__init__()
        gm = trace(model)
        if not boundaries:
            raise DNAError("a teacher needs at least one block boundary")
        nodes = list(gm.graph.nodes)
        index = {n: i for i, n in enumerate(nodes)}
        ends = [_resolve(gm, b) for b in boundaries]
        positions = [index[e] for e in ends]
        if positions != sorted(positions) or len(set(positions)) != len(positions):
            raise DNAError(f"block boundaries {list(boundaries)} are not in execution order")
        placeholders = [n for n in nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise DNAError(f"a teacher takes exactly one input tensor (this one takes {len(placeholders)})")
        for e, p in zip(ends, positions):
            live = _live_after(nodes, p)
            if live != [e]:
                others = [n.name for n in live if n is not e]
                raise DNAError(f"cannot cut the teacher after {e.name!r}: {others} also cross the cut "
                               f"(a skip connection spans it)", hint=f"legal cuts: {', '.join(cut_points(gm)[:12])}")
        starts = [placeholders[0]] + ends
        stops = positions + [len(nodes) - 1]
        stages = []
        for k in range(len(starts)):
            stages.append(_stage(gm, nodes, starts[k], index[starts[k]] + 1, stops[k], nodes[stops[k]]))
        self.stages = nn.ModuleList(stages[:-1])
        self.head = stages[-1]
        self.boundaries = [e.name for e in ends]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[input, block 1 output, ..., block N output]."""
        out = [x]
        for stage in self.stages:
            out.append(stage(out[-1]))
        return out


def _stage(gm: fx.GraphModule, nodes: list[fx.Node], start: fx.Node, first: int, last: int,
           end: fx.Node) -> fx.GraphModule:
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {start: g.placeholder("x")}
    result = None
    for n in nodes[first:last + 1]:
        if n.op == "output":
            result = g.output(fx.map_arg(n.args[0], lambda a: _lookup(g, env, a)))
            break
        if n.op == "placeholder":
            raise DNAError("teacher inputs must come first")
        env[n] = g.node_copy(n, lambda a: _lookup(g, env, a))
    if result is None:
        g.output(env[end])
    g.lint()
    mod = fx.GraphModule(gm, g)
    mod.delete_all_unused_submodules()
    return mod


def _lookup(g: fx.Graph, env: dict[fx.Node, fx.Node], a: fx.Node) -> fx.Node:
    """Values of this stage, or constants (``get_attr``) defined before the cut, copied in."""
    if a not in env:
        if a.op != "get_attr":
            raise DNAError(f"value {a.name!r} crosses a block cut")
        env[a] = g.node_copy(a)
    return env[a]


# -- feature cache -------------------------------------------------------------------------------
def fingerprint(module: nn.Module) -> str:
    """Hash of a module's weights and buffers: a cache made by another teacher is refused."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes() if t.dtype != torch.bfloat16 else
                 t.float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def compute_features(teacher: TeacherBlocks, images: torch.Tensor, batch_size: int = 256,
                     device: str | torch.device = "cpu", progress: Callable[[int], None] | None = None
                     ) -> list[torch.Tensor]:
    was_training = teacher.training
    teacher.eval().to(device)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(teacher.stages) + 1)]
    try:
        for start in range(0, images.shape[0], batch_size):
            feats = teacher.features(images[start:start + batch_size].to(device))
            for k, f in enumerate(feats):
                parts[k].append(f.detach().cpu())
            if progress is not None:
                progress(feats[0].shape[0])
    finally:
        teacher.train(was_training)
    return [torch.cat(p) for p in parts]


def save_features(path: str | Path, features: Sequence[torch.Tensor], meta: dict | None = None) -> None:
    from nasir.io import atomic_write

    tensors = {f"feature{k}": f.contiguous() for k, f in enumerate(features)}
    header = {"format": CACHE_FORMAT, "blocks": str(len(features) - 1), "meta": json.dumps(meta or {}),
              "sha256": tensor_digest(tensors)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_features(path: str | Path, expect: dict | None = None) -> tuple[list[torch.Tensor], dict]:
    """Features [input, block 1 out, ...] and the cache's metadata; ``expect`` entries must match."""
    path = Path(path)
    if not path.is_file():
        raise DNAError(f"no feature cache at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != CACHE_FORMAT:
                raise DNAError(f"{path}: not a nasir DNA feature cache")
            names = [f"feature{k}" for k in range(len(f.keys()))]
            if sorted(f.keys()) != sorted(names) or header.get("blocks") != str(len(names) - 1):
                raise DNAError(f"{path}: feature cache holds other tensors than its header says")
            feats = [f.get_tensor(name) for name in names]
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as e:
        if isinstance(e, DNAError):
            raise
        raise DNAError(f"{path}: corrupt or unreadable feature cache ({type(e).__name__}: {e})") from None
    if "sha256" in header and header["sha256"] != tensor_digest(dict(zip(names, feats))):
        raise DNAError(f"{path}: feature cache tensors do not match their checksum (the file is damaged)")
    meta = parse_json(header.get("meta", "{}"), f"{path} (metadata)", "feature cache metadata", DNAError)
    if not isinstance(meta, dict):
        raise DNAError(f"{path}: feature cache metadata is not a JSON object")
    if len({f.shape[0] for f in feats}) != 1:
        raise DNAError(f"{path}: blocks hold different numbers of samples")
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise DNAError(f"{path}: cache was made with {key}={meta.get(key)!r}, expected {value!r}; delete it to rebuild")
    return feats, meta


def cached_features(teacher: TeacherBlocks, images: torch.Tensor, path: str | Path | None, batch_size: int = 256,
                    device: str | torch.device = "cpu", progress: Callable[[int], None] | None = None,
                    data: str = "tinyshapes") -> list[torch.Tensor]:
    """Load the cache at ``path`` if it was made by this teacher on these images; else build it.
    ``data`` (the ``--data`` the images came from) is recorded for ``nasir dna rate``; the images'
    own checksum is what identifies them."""
    meta = {"teacher": fingerprint(teacher), "samples": int(images.shape[0]),
            "images": hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]}
    if path is not None and Path(path).is_file():
        feats, _ = load_features(path, expect=meta)
        return feats
    feats = compute_features(teacher, images, batch_size, device, progress)
    if path is not None:
        save_features(path, feats, {**meta, "data": data})
    return feats
