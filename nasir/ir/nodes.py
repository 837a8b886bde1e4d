"""IR node kinds: a pydantic discriminated union on ``kind``.

Each node produces one tensor. ``inputs`` lists the producing nodes (by name, in argument order)
inside the same region. Choices and blocks own nested regions; a region's ``input`` nodes stand for
the values the owning node passes in.

Weighted constructs (``choice``, ``merged_conv``) refer to an architecture parameter ``arch`` of n
original candidates with probabilities p = softmax(alpha). Candidate j covers a set of original
indices ``covers[j]``; its weight is ``sum(p[i] for i in covers[j]) / sum(p[i] for i in domain)``.
At parse time covers are singletons and the domain is everything, i.e. plain softmax weights.
Module sharing (PMS) groups candidates into a nested choice whose domain is the group, which gives
exactly the derived weights P_S and q_i = p_i / P_S of TopoNAS without new learnable parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from nasir.diagnostics import SourceLoc
from nasir.ir.names import FreshNames
from nasir.ir.ops import OpAttrsUnion

if TYPE_CHECKING:
    import networkx as nx


class NodeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    inputs: list[str] = Field(default_factory=list)
    loc: SourceLoc | None = None
    shape: list[int] | None = None
    #: DNA block this node belongs to (from a ``block`` annotation or the dna-partition pass).
    block: str | None = None
    #: DANCE channel budget requested for this node (``gate`` annotation), a fraction in (0, 1].
    budget: float | None = None


class InputNode(NodeBase):
    kind: Literal["input"] = "input"
    index: int = Field(default=0, ge=0)


class OutputNode(NodeBase):
    kind: Literal["output"] = "output"
    index: int = Field(default=0, ge=0)
    #: ``"aux"``: an auxiliary output (DARTS' auxiliary head, ``aux_output`` in the DSL), which the
    #: lowered network returns beside its output in training mode only (``nasir.runtime.AuxOutput``)
    #: and does not compute in eval mode; ``None``: an output of the network.
    role: Literal["aux"] | None = None


class WidthChoice(BaseModel):
    """A width choice on an op's output channels (``conv(one_of [8, 16, 24], 3)``).

    The op holds one weight of the largest width (its ``width_attr`` attribute, e.g. ``out_channels``,
    equals ``max(widths)``); candidate i of the architecture parameter ``arch`` keeps the first
    ``widths[i]`` channels of it. Layers reading those channels follow the chosen width
    (``nasir.ir.width`` finds them). Several ops may use one parameter with widths of their own
    (``conv(w)`` and ``conv(2 * w)``); ops whose channels are tied (summed) use the same widths.
    """

    model_config = ConfigDict(extra="forbid")

    arch: str
    widths: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)


class OpNode(NodeBase):
    kind: Literal["op"] = "op"
    attrs: OpAttrsUnion
    #: The op's output width is chosen by an architecture parameter (``None``: fixed width).
    width: WidthChoice | None = None


class SumNode(NodeBase):
    kind: Literal["sum"] = "sum"
    #: PC-DARTS edge normalization: the input group (``Graph.input_groups``) whose edge weights scale
    #: the inputs, input i by ``softmax(beta)[i]``, with ``beta`` a search parameter of its own per
    #: group (shared by the cells that share the group's choices). A fixed lowering has no search
    #: parameters and sums as usual, as it drops the choices' weights.
    edge_weights: str | None = None


class ConcatNode(NodeBase):
    """Concatenation along channels."""

    kind: Literal["concat"] = "concat"


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    body: Region


class ArchWeighted(NodeBase):
    """A node whose candidates are weighted by the architecture parameter ``arch`` (see the module
    docstring for ``covers`` and ``domain``): choices and merged convolutions.

    ``kind`` is declared here, before the shared fields, only so that serialized nodes keep their
    field order (``kind, arch, covers, domain``); each subclass narrows it to its own literal.
    """

    kind: Literal["choice", "merged_conv"]
    arch: str
    covers: list[list[int]]
    domain: list[int]


class ChoiceNode(ArchWeighted):
    kind: Literal["choice"] = "choice"
    candidates: list[Candidate] = Field(min_length=1)


class KernelCandidate(BaseModel):
    """One candidate of a merged convolution: a k x k (dilated) conv, optionally followed by a
    pointwise conv (a depthwise->pointwise pair), or a fixed kernel standing for identity or for an
    average pool that is exactly a uniform convolution (``count_include_pad``, centred padding)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kernel: int = Field(ge=1)
    dilation: int = Field(default=1, ge=1)
    #: "conv" (learnable kernel), "identity" (fixed centred delta) or "avg_pool" (fixed uniform
    #: 1/k^2 kernel per channel); fixed kernels are never normalized. In a merged conv whose other
    #: candidates are depthwise->pointwise pairs, fixed kernels are depthwise with an identity pointwise.
    source: Literal["conv", "identity", "avg_pool"] = "conv"
    #: True when a learnable pointwise conv follows the depthwise kernel (factorized merge).
    pointwise: bool = False
    #: The candidate conv has a learned bias (``conv(bias=true)``): the merged conv adds the biases
    #: weighted like the kernels. Only a learnable kernel without a pointwise conv can have one.
    bias: bool = False
    #: Weight names of the original candidate modules, so weights can be copied in and out.
    weight_names: list[str] = Field(default_factory=list)

    @field_validator("bias")
    @classmethod
    def _bias_on_a_learnable_kernel(cls, bias: bool, info: ValidationInfo) -> bool:
        if bias and (info.data.get("source") != "conv" or info.data.get("pointwise")):
            raise ValueError("only a learnable kernel without a pointwise conv (source 'conv', pointwise false) "
                             "can have a bias")
        return bias


#: The exact forms a merged convolution can be computed in (``nasir.ir.merge_forms``).
MergeForm = Literal["dense", "grouped", "separate"]


class MergedConvNode(ArchWeighted):
    """A weighted sum of linear convolutions computed as one conv with a merged kernel."""

    kind: Literal["merged_conv"] = "merged_conv"
    kernels: list[KernelCandidate] = Field(min_length=1)
    out_channels: int = Field(ge=1)
    stride: int = Field(default=1, ge=1)
    groups: int = Field(default=1, ge=1)
    normalize: bool = False
    #: The form supernet and sampled lowerings compute it in (``select-merge-form``); None: the
    #: lowering picks the cheapest per device kind by the cost model.
    form: MergeForm | None = None


class GateNode(NodeBase):
    """DANCE select gate: multiplies channels by a mask shared by every gate of its group."""

    kind: Literal["gate"] = "gate"
    group: str
    channels: int


class BlockNode(NodeBase):
    """A DNA block: a region trained and searched on its own, inlined when lowered whole."""

    kind: Literal["block"] = "block"
    body: Region


Node = Annotated[
    InputNode | OutputNode | OpNode | SumNode | ConcatNode | ChoiceNode | MergedConvNode | GateNode | BlockNode,
    Field(discriminator="kind"),
]


class Region(BaseModel):
    """An ordered list of nodes in topological order, with a networkx view for analyses."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[Node] = Field(default_factory=list)

    def __eq__(self, other: object) -> bool:  # the name index is a cache, not part of the value
        return isinstance(other, Region) and self.nodes == other.nodes

    __hash__ = None  # type: ignore[assignment]

    # -- lookup ---------------------------------------------------------------------------
    def _names(self) -> dict[str, int]:
        # A name -> position cache kept in __dict__ (pydantic private attributes are slow to reach).
        index = self.__dict__.get("_index_cache")
        if index is None or len(index) != len(self.nodes):
            index = {n.name: i for i, n in enumerate(self.nodes)}
            self.__dict__["_index_cache"] = index
        return index

    def __getitem__(self, name: str) -> Node:
        return self.nodes[self._names()[name]]

    def position(self, name: str) -> int:
        """Where node ``name`` stands in ``nodes``."""
        return self._names()[name]

    def __contains__(self, name: str) -> bool:
        return name in self._names()

    def __iter__(self):  # type: ignore[override]
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def inputs(self) -> list[InputNode]:
        return sorted((n for n in self.nodes if n.kind == "input"), key=lambda n: n.index)

    @property
    def outputs(self) -> list[OutputNode]:
        """The outputs the region (the network, in eval mode) returns, by index; not the auxiliary ones."""
        return sorted((n for n in self.nodes if n.kind == "output" and n.role is None), key=lambda n: n.index)

    @property
    def aux_outputs(self) -> list[OutputNode]:
        """The auxiliary outputs (``OutputNode.role``), by index."""
        return sorted((n for n in self.nodes if n.kind == "output" and n.role == "aux"), key=lambda n: n.index)

    # -- mutation (passes call ``touch`` after editing ``nodes`` in place) -------------------
    def touch(self) -> None:
        self.__dict__.pop("_index_cache", None)

    def add(self, node: NodeBase) -> NodeBase:
        index = self._names()
        if node.name in index:
            raise ValueError(f"duplicate node name {node.name!r}")
        self.nodes.append(node)  # type: ignore[arg-type]
        index[node.name] = len(self.nodes) - 1
        return node

    def fresh_name(self, base: str) -> str:
        """An unused node name (``nasir.ir.names``): ``base``, else ``base_k`` with the smallest free k.

        The generator lives as long as the name index it reads: ``add`` only grows that index,
        while ``touch`` (any other edit) drops it, and with it the generator's remembered suffixes.
        """
        names = self._names()
        fresh = self.__dict__.get("_fresh_cache")
        if fresh is None or fresh.taken is not names:
            fresh = FreshNames(names)
            self.__dict__["_fresh_cache"] = fresh
        return fresh(base)

    def users(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    # -- analyses --------------------------------------------------------------------------
    def digraph(self) -> nx.DiGraph:
        """The region as a networkx DiGraph (node attribute ``node`` holds the payload)."""
        import networkx as nx  # a tenth of a second to import: only the analyses that need it pay

        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n.name, node=n)
        for n in self.nodes:
            for i, src in enumerate(n.inputs):
                g.add_edge(src, n.name, index=i)
        return g

    def sort(self) -> None:
        """Restore topological order after a rewrite (stable for already ordered nodes)."""
        import networkx as nx

        g = self.digraph()
        pos = {n.name: i for i, n in enumerate(self.nodes)}
        order = list(nx.lexicographical_topological_sort(g, key=lambda name: pos[name]))
        by_name = {n.name: n for n in self.nodes}
        self.nodes = [by_name[name] for name in order]
        self.touch()


Candidate.model_rebuild()
ChoiceNode.model_rebuild()
BlockNode.model_rebuild()
Region.model_rebuild()


def sub_regions(node: NodeBase) -> list[tuple[str, Region]]:
    """(local name, region) pairs nested directly inside ``node``."""
    if isinstance(node, ChoiceNode):
        return [(c.name, c.body) for c in node.candidates]
    if isinstance(node, BlockNode):
        return [("", node.body)]
    return []
