"""Width choices: which layers follow a chosen width, the checks, and the network of one choice.

A width choice (``OpNode.width``) lets an architecture parameter pick how many of a conv's (or
linear's) output channels are kept, all candidates sharing one weight of the largest width: width
w keeps channels ``0 .. w - 1`` (OFA, NNI's mutable layers). The channel-dependency analysis
(``nasir.ir.channels``) says which layers follow: the values in the producer's channel space.

* channelwise ops (bn, relu, pools, dwconv, ...) keep the width; those holding per-channel weights
  or statistics (bn, dwconv) slice them;
* conv and linear consume it as input channels (their weights are sliced along the input);
* ``sum`` (and a choice, whose candidates are summed) ties widths: every producer of a tied space
  must choose its width with the same parameter and widths;
* ``concat`` places a width segment at an offset: a consumer keeps the first w channels of each
  segment; ``flatten`` repeats each channel H*W times.

Where the analysis cannot resize channels exactly (a network output, a grouped conv, a merged conv,
``factorized_reduce``, a DANCE gate) ``check_widths`` refuses the graph with the reason.

``WidthAnalysis.uses`` lists, per op path, how its weights are sliced (``WidthUse``): lowering
slices them per forward in sampled mode, masks consumers' inputs in supernet mode and, through
``fix_widths``, builds plain layers of the chosen width in fixed mode. Torch-free, like all of the IR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nasir.diagnostics import VerificationError
from nasir.ir.channels import ChannelAnalysis, analyze_channels
from nasir.ir.graph import Graph
from nasir.ir.nodes import GateNode, OpNode
from nasir.ir.rewrite import walk, width_ops

#: A pick per architecture parameter: parameter name -> candidate index.
Picks = Mapping[str, int]


@dataclass(frozen=True)
class WidthSegment:
    """``size`` channels of a value, each repeated ``repeat`` times (after a flatten), of which a
    width choice on ``arch`` keeps the first ``widths[pick]``; a fixed segment has no ``arch``."""

    size: int
    repeat: int = 1
    arch: str | None = None
    widths: tuple[int, ...] = ()

    def kept(self, picks: Picks) -> int:
        """How many of the segment's channels the picks keep."""
        return self.size if self.arch is None else self.widths[picks[self.arch]]


def kept_features(segments: Sequence[WidthSegment], picks: Picks) -> list[int]:
    """Indices of a value's features (channels) that the picks keep: the first kept channels of every segment."""
    out: list[int] = []
    offset = 0
    for seg in segments:
        out.extend(range(offset, offset + seg.kept(picks) * seg.repeat))
        offset += seg.size * seg.repeat
    return out


def segment_archs(segments: Sequence[WidthSegment]) -> list[str]:
    """The width parameters that resize some of ``segments``, in order of first appearance."""
    return list(dict.fromkeys(s.arch for s in segments if s.arch is not None))


@dataclass(frozen=True)
class WidthUse:
    """How one op's weights follow width choices.

    ``out``: the op's own width choice (arch, widths), slicing dimension 0 of its weights;
    ``inp``: the layout of its input when a width choice resizes part of it, slicing dimension 1
    (conv, linear) or, for a ``channelwise`` op (bn, dwconv), dimension 0.
    """

    out: tuple[str, tuple[int, ...]] | None
    inp: tuple[WidthSegment, ...] | None
    channelwise: bool

    @property
    def archs(self) -> list[str]:
        """Every parameter the op's slicing reads, its own first."""
        own = [self.out[0]] if self.out else []
        return list(dict.fromkeys(own + segment_archs(self.inp or ())))

    def dims(self, picks: Picks) -> tuple[list[int] | None, list[int] | None]:
        """Kept indices along dimensions 0 and 1 of the op's weights (``None``: the whole dimension)."""
        kept_in = kept_features(self.inp, picks) if self.inp is not None else None
        if self.channelwise:
            return kept_in, None
        kept_out = list(range(self.out[1][picks[self.out[0]]])) if self.out else None
        return kept_out, kept_in

    @property
    def masks_input(self) -> bool:
        """A consumer (conv, linear) reading chosen widths: in supernet mode it reads them masked."""
        return not self.channelwise and self.inp is not None


class WidthAnalysis:
    """The width choices of a graph (shapes inferred): the layout of every value and how every op
    follows; ``check_widths`` first, or ``problems`` lists what cannot follow."""

    def __init__(self, graph: Graph):
        self.channels: ChannelAnalysis = analyze_channels(graph)
        a = self.channels
        #: space root -> (arch, widths, first producer's path)
        self.spaces: dict[int, tuple[str, tuple[int, ...], str]] = {}
        #: ops with a width choice that start no space of their own (a grouped conv: the verifier refuses them)
        self.unsliceable: list[str] = []
        for path in a.order:
            _, node = a.nodes[path]
            if isinstance(node, OpNode) and node.width is not None:
                if path not in a.produced:
                    self.unsliceable.append(path)
                    continue
                self.spaces.setdefault(a.find(a.produced[path]), (node.width.arch, tuple(node.width.widths), path))
        #: op path -> how it follows (every op whose weights or statistics a width choice slices)
        self.uses: dict[str, WidthUse] = {}
        for path in a.order:
            region, node = a.nodes[path]
            if not isinstance(node, OpNode):
                continue
            inp = self.segments(self._input_path(path, node))
            resized = inp if any(s.arch for s in inp) else None
            out = (node.width.arch, tuple(node.width.widths)) if node.width is not None else None
            if out is not None or (resized is not None and not node.attrs.parameter_free):
                self.uses[path] = WidthUse(out, resized, node.attrs.channelwise)

    def _input_path(self, path: str, node: OpNode) -> str:
        return path[: len(path) - len(node.name)] + node.inputs[0]

    def segments(self, path: str) -> tuple[WidthSegment, ...]:
        """The layout of value ``path`` with the width choice resizing each segment, if any."""
        out = []
        for seg in self.channels.layouts[path]:
            space = self.spaces.get(self.channels.find(seg.space))
            arch, widths = (space[0], space[1]) if space else (None, ())
            out.append(WidthSegment(seg.size, seg.repeat, arch, widths))
        return tuple(out)

    def archs_under(self, prefix: str) -> set[str]:
        """Width parameters that ops under the path ``prefix`` (a candidate: ``edge.cand.``) read."""
        return {arch for path, use in self.uses.items() if path.startswith(prefix) for arch in use.archs}

    def touched(self, arch: str) -> set[str]:
        """Paths of the ops whose input or output channels ``arch`` resizes (their cost depends on it)."""
        out = set()
        a = self.channels
        for path in a.order:
            _, node = a.nodes[path]
            if isinstance(node, OpNode):
                here = self.segments(path) + self.segments(self._input_path(path, node))
                if any(s.arch == arch for s in here):
                    out.add(path)
        return out

    def problems(self) -> list[tuple[OpNode | GateNode, str, str | None]]:
        """(node, message, hint) for every width choice whose channels cannot follow it."""
        a = self.channels
        found: list[tuple[OpNode | GateNode, str, str | None]] = [
            (a.nodes[path][1], f"{a.nodes[path][1].attrs.op} {path!r} cannot choose its width",
             "width choices go on dense convs (groups = 1), pwconv and linear") for path in self.unsliceable]
        for root, (arch, widths, first) in self.spaces.items():
            node = a.nodes[first][1]
            what = f"width choice {arch!r}"
            if a.is_fixed(root):
                found.append((node, f"{what}: its channels cannot follow a chosen width: {a.fixed_why[a.find(root)]}",
                              "end the width choice in a conv or linear that reads its channels (e.g. pwconv)"))
                continue
            for path in a.order:
                other = a.nodes[path][1]
                if path not in a.produced or a.find(a.produced[path]) != root or path == first:
                    continue
                if other.width is None:
                    found.append((node, f"{what}: its channels are tied (by a sum or a choice) to those of {path!r}, "
                                        "whose width is fixed",
                                  "choose both widths with one value choice: w = one_of [...], then conv(w, ...) in each"))
                elif (other.width.arch, tuple(other.width.widths)) != (arch, widths):
                    found.append((node, f"{what}: its channels are tied (by a sum or a choice) to those of {path!r}, "
                                        f"which chooses {list(other.width.widths)} with {other.width.arch!r}",
                                  "choose both widths with one value choice: w = one_of [...], then conv(w, ...) in each"))
        for path in a.order:
            node = a.nodes[path][1]
            if isinstance(node, GateNode) and any(s.arch for s in self.segments(path)):
                found.append((node, "a DANCE gate cannot read channels of a width choice", None))
        return found


def has_widths(graph: Graph) -> bool:
    return next(width_ops(graph.body), None) is not None


def check_widths(graph: Graph) -> WidthAnalysis | None:
    """Raise a located ``VerificationError`` for the first width choice whose channels cannot
    follow it (shapes must be inferred); the analysis, or ``None`` when the graph has no width choice."""
    if not has_widths(graph):
        return None
    analysis = WidthAnalysis(graph)
    for node, message, hint in analysis.problems():
        raise VerificationError(f"{message} (at node '{node.name}')", node.loc, hint)
    return analysis


def fix_widths(graph: Graph, picks: Picks) -> int:
    """Give every op with a width choice its picked width, as a plain attribute (in place; shapes
    must be re-inferred after). Returns how many ops were fixed; their weights are the first
    channels of the shared weight (``WidthUse.dims`` says which)."""
    done = 0
    for _, node, _ in walk(graph.body):
        if isinstance(node, OpNode) and node.width is not None:
            width = node.width.widths[picks[node.width.arch]]
            node.attrs = node.attrs.model_copy(update={node.attrs.width_attr: width})
            node.width = None
            done += 1
    return done

