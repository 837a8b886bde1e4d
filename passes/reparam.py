"""reparam: kernel merging (TopoNAS 3.4, Eq. 14-16; MergeNAS). Exact (unless ``kernel_norm``).

A choice's candidates that are linear convolutions of one *class* -- same input and output channels,
stride and grouping -- are computed as one ``merged_conv``: each keeps its own kernel, and the
merged kernel is their weighted sum embedded (zero padded, dilation expanded) in the largest
footprint. Recognised candidates (after ``topo-simplify`` stripped the shared non-linearities):

* ``conv(k, stride, dilation, groups)`` with centred ("same") padding: dense/grouped class;
* ``dwconv(k, stride, dilation)`` alone: the grouped class with groups = channels;
  a bias of either (NAS-Bench-201's search cells have one) stays the candidate's own and is added
  after the merged conv with the candidate's weight (``KernelCandidate.bias``), which is exact;
* ``dwconv(k, stride, dilation) -> conv(C_out, 1)`` without biases: the factorized class, merged
  as the dense kernel W[o, c] = sum_i q_i PW_i[o, c] E(DW_i[c]) (a depthwise bias would pass
  through the pointwise conv: such pairs stay unmerged);
* identity (or an empty candidate): a fixed centred delta, stride 1, C_in = C_out;
* ``avg_pool(k, stride)`` with ``count_include_pad=true`` and padding k // 2: exactly a fixed uniform
  1/k^2 kernel on each channel. With ``count_include_pad=false`` the divisor shrinks at the border
  (DARTS' pools), which no convolution computes, so such pools stay unmerged;
* ``zero``: contributes nothing and is dropped, but its index stays in the domain so the others keep
  their weight p_i / sum(p[domain]);
* a candidate that is itself a ``merged_conv`` on the same parameter whose domain is the candidate's
  cover (e.g. a PMS group merged one level down): its kernels are absorbed, since
  (p_i / P_S) * (P_S / P) = p_i / P.

Width choices stay as they are: a candidate whose conv chooses its width is not a fixed linear
convolution, and a choice reading or writing channels of a width choice is left unmerged (a merged
conv's channels cannot follow a chosen width); a pass note says how many.

Fixed kernels join the class with the most learnable kernels they fit. A class merges if it has at
least one learnable kernel and two members. If one class takes every non-zero candidate, the choice
itself becomes the merged conv; otherwise the members become one candidate (weight P_S) holding a
merged conv over them (weights q_i = p_i / P_S), the remaining candidates stay as they are.

Weights: every kernel records the IR paths of the convs it replaces (``weight_names``: depthwise or
dense conv first, pointwise last) so trained weights can be carried over (``nasir.testing.carry_weights``).

``kernel_norm=true`` also marks every merged conv for kernel normalization (see ``kernel_norm.py``),
which changes the function on purpose: the pass is then approximate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from nasir.ir.graph import Graph
from nasir.ir.nodes import (
    Candidate,
    ChoiceNode,
    InputNode,
    KernelCandidate,
    MergedConvNode,
    OpNode,
    OutputNode,
    Region,
)
from nasir.ir.rewrite import fresh_name, replace_node, walk
from nasir.ir.verify import infer_shapes
from nasir.ir.width import WidthAnalysis, has_widths
from nasir.passes._topo_match import chain
from nasir.passes._topo_stats import edge_summary
from nasir.passes.kernel_norm import normalize_merged_convs
from nasir.passmanager import Exactness, Pass, PassResult, register


@dataclass
class _Member:
    """One candidate recognised as a linear convolution (or several, for an absorbed merged conv)."""

    index: int
    kernels: list[KernelCandidate]
    covers: list[list[int]]
    #: (factorized, stride, c_in, c_out, groups) for learnable members; None for fixed kernels.
    cls: tuple | None
    stride: int
    fixed: bool = False


@dataclass
class _Merge:
    cls: tuple
    members: list[_Member] = field(default_factory=list)

    @property
    def learnable(self) -> int:
        return sum(not m.fixed for m in self.members)


def _centred(kernel: int, dilation: int, pad: int) -> bool:
    eff = dilation * (kernel - 1)
    return eff % 2 == 0 and pad == eff // 2


def _plain_conv(op: OpNode) -> bool:
    a = op.attrs
    return a.op in ("conv", "dwconv") and _centred(a.kernel, a.dilation, a.pad)


def _recognise(node: ChoiceNode, j: int, cand: Candidate, c_in: int, c_out: int, body_path: str) -> _Member | str | None:
    """The linear form of candidate ``j``, "zero" for a zero candidate, None if not linear."""
    cover = node.covers[j]
    ops = chain(cand.body)
    if ops is None:
        return None
    ops = [op for op in ops if op.attrs.op != "identity"]
    if any(op.width is not None for op in ops):
        return None
    if len(ops) == 1 and ops[0].attrs.op == "zero":
        return "zero"
    if not ops:
        if c_in != c_out:
            return None
        return _Member(j, [KernelCandidate(name=cand.name, kernel=1, source="identity")], [cover], None, 1, fixed=True)
    a = ops[0].attrs
    if len(ops) == 1 and a.op == "avg_pool":
        if not a.count_include_pad or a.pad != a.kernel // 2 or a.kernel % 2 == 0 or c_in != c_out:
            return None
        return _Member(j, [KernelCandidate(name=cand.name, kernel=a.kernel, source="avg_pool")], [cover], None,
                       a.stride, fixed=True)
    if not all(_plain_conv(op) for op in ops):
        return None
    if len(ops) == 1 and a.op == "conv":
        kc = KernelCandidate(name=cand.name, kernel=a.kernel, dilation=a.dilation, bias=a.bias,
                             weight_names=[body_path + ops[0].name])
        return _Member(j, [kc], [cover], (False, a.stride, c_in, c_out, a.groups), a.stride)
    if len(ops) == 1 and a.op == "dwconv":
        kc = KernelCandidate(name=cand.name, kernel=a.kernel, dilation=a.dilation, bias=a.bias,
                             weight_names=[body_path + ops[0].name])
        return _Member(j, [kc], [cover], (False, a.stride, c_in, c_out, c_in), a.stride)
    if len(ops) == 2 and a.op == "dwconv" and not a.bias:
        pw = ops[1].attrs
        if pw.op == "conv" and pw.kernel == 1 and pw.stride == 1 and pw.groups == 1 and pw.dilation == 1 and not pw.bias:
            kc = KernelCandidate(name=cand.name, kernel=a.kernel, dilation=a.dilation, pointwise=True,
                                 weight_names=[body_path + ops[0].name, body_path + ops[1].name])
            return _Member(j, [kc], [cover], (True, a.stride, c_in, c_out, 1), a.stride)
    return None


def _absorbable(node: ChoiceNode, j: int, cand: Candidate) -> _Member | None:
    """A candidate that is just a merged conv on the same parameter over exactly its cover."""
    inner = [n for n in cand.body.nodes if n.kind not in ("input", "output")]
    if len(inner) != 1 or not isinstance(inner[0], MergedConvNode):
        return None
    m = inner[0]
    ins, outs = cand.body.inputs, cand.body.outputs
    if len(ins) != 1 or m.inputs != [ins[0].name] or outs[0].inputs != [m.name]:
        return None
    if m.arch != node.arch or sorted(m.domain) != sorted(node.covers[j]) or m.normalize:
        return None
    factorized = any(k.pointwise for k in m.kernels)
    c_in = ins[0].shape[0]
    cls = (factorized, m.stride, c_in, m.out_channels, 1 if factorized else m.groups)
    return _Member(j, [k.model_copy(deep=True) for k in m.kernels], [list(c) for c in m.covers], cls, m.stride)


def _fits(member: _Member, cls: tuple) -> bool:
    factorized, stride, c_in, c_out, groups = cls
    if member.stride != stride or c_in != c_out:
        return False
    return member.kernels[0].source != "identity" or stride == 1


def plan_merges(node: ChoiceNode, region: Region, path: str) -> tuple[list[_Merge], list[int]]:
    """The merge groups of one choice, and the indices of its zero candidates."""
    c_in = region[node.inputs[0]].shape[0] if len(node.inputs) == 1 else None
    if c_in is None or node.shape is None:
        return [], []
    c_out = node.shape[0]
    learn: dict[tuple, _Merge] = {}
    fixed: list[_Member] = []
    zeros: list[int] = []
    for j, cand in enumerate(node.candidates):
        m = _absorbable(node, j, cand) or _recognise(node, j, cand, c_in, c_out, f"{path}.{cand.name}.")
        if m == "zero":
            zeros.append(j)
        elif isinstance(m, _Member) and m.fixed:
            fixed.append(m)
        elif isinstance(m, _Member):
            learn.setdefault(m.cls, _Merge(m.cls)).members.append(m)
    for m in fixed:
        fits = [g for g in learn.values() if _fits(m, g.cls)]
        if fits:
            max(fits, key=lambda g: g.learnable).members.append(m)
    merges = [g for g in learn.values() if len(g.members) >= 2]
    for g in merges:
        g.members.sort(key=lambda m: m.index)
    return merges, zeros


def _merged_node(name: str, node: ChoiceNode, merge: _Merge, domain: list[int]) -> MergedConvNode:
    factorized, stride, _, c_out, groups = merge.cls
    kernels: list[KernelCandidate] = []
    covers: list[list[int]] = []
    taken: set[str] = set()
    for m in merge.members:
        for kc, cov in zip(m.kernels, m.covers):
            kc.name = fresh_name(kc.name, taken)
            taken.add(kc.name)
            kernels.append(kc)
            covers.append(list(cov))
    return MergedConvNode(name=name, inputs=list(node.inputs), loc=node.loc, shape=list(node.shape), arch=node.arch,
                          covers=covers, domain=sorted(domain), kernels=kernels, out_channels=c_out, stride=stride,
                          groups=1 if factorized else groups)


def _resized_values(graph: Graph) -> set[str]:
    """Paths of the values some of whose channels a width choice resizes."""
    if not has_widths(graph):
        return set()
    analysis = WidthAnalysis(graph)
    return {path for path in analysis.channels.layouts if any(s.arch for s in analysis.segments(path))}


@register
class Reparam(Pass):
    name = "reparam"
    summary = "merge choices of linear convolutions into one merged_conv (TopoNAS 3.4)"

    #: Also standardize candidate kernels before merging (TopoNAS 3.5); makes the pass approximate.
    kernel_norm: bool = False

    def exactness(self) -> Exactness:
        return "approximate" if self.kernel_norm else "exact"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        infer_shapes(graph)
        resized = _resized_values(graph)
        kinds: Counter = Counter()
        kept = 0
        for path, node, region in walk(graph.body, children_first=True):
            if isinstance(node, ChoiceNode):
                if {path, path[: len(path) - len(node.name)] + node.inputs[0]} & resized:
                    kept += 1
                    continue
                self._merge(region, node, path, result, kinds)
        if kept:
            result.notes.append(f"{kept} choice(s) read or write channels of width choices and stay unmerged")
        infer_shapes(graph)
        if self.kernel_norm:
            normalize_merged_convs(graph, result)
            result.notes.append("approximate: kernel normalization standardizes every candidate kernel (TopoNAS Eq. 28)")
        for kind, n in sorted(kinds.items()):
            result.count(f"merged-{kind}", n)
        result.notes.append(edge_summary(graph))
        return result

    def _merge(self, region: Region, node: ChoiceNode, path: str, result: PassResult, kinds: Counter) -> None:
        merges, zeros = plan_merges(node, region, path)
        if not merges:
            return
        for g in merges:
            for m in g.members:
                for kc in m.kernels:
                    kinds[kc.source if not kc.pointwise else "factorized"] += 1
        result.count("merged-convs", len(merges))
        merged_idx = {m.index for g in merges for m in g.members}
        if len(merges) == 1 and merged_idx | set(zeros) == set(range(len(node.candidates))):
            # the whole choice is one convolution; zero candidates drop out but stay in the domain
            replace_node(region, node.name, [_merged_node(node.name, node, merges[0], node.domain)])
            return
        names = {c.name for c in node.candidates}
        cands, covers = [], []
        first_of = {g.members[0].index: g for g in merges}
        c_in_shape = region[node.inputs[0]].shape
        for j, (cand, cover) in enumerate(zip(node.candidates, node.covers)):
            if j in first_of:
                g = first_of[j]
                cover_g = sorted(i for m in g.members for c in m.covers for i in c)
                body = Region()
                body.add(InputNode(name="x", shape=list(c_in_shape)))
                inner = _merged_node("conv", node, g, cover_g)
                inner.inputs = ["x"]
                body.add(inner)
                body.add(OutputNode(name="out", inputs=["conv"], shape=list(node.shape)))
                name = fresh_name("merged", names)
                names.add(name)
                cands.append(Candidate(name=name, body=body))
                covers.append(cover_g)
            elif j not in merged_idx:
                cands.append(cand)
                covers.append(cover)
        node.candidates = cands
        node.covers = covers
