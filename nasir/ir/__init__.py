"""The nasir graph IR: nodes, regions, graphs, shapes, costs, verification, serialization."""

from nasir.ir.graph import ArchParam, Graph, InputGroup
from nasir.ir.nodes import (
    ArchWeighted,
    BlockNode,
    Candidate,
    ChoiceNode,
    ConcatNode,
    GateNode,
    InputNode,
    KernelCandidate,
    MergedConvNode,
    Node,
    OpNode,
    OutputNode,
    Region,
    SumNode,
    WidthChoice,
)

__all__ = [
    "ArchParam", "ArchWeighted", "BlockNode", "Candidate", "ChoiceNode", "ConcatNode", "GateNode", "Graph", "InputGroup",
    "InputNode", "KernelCandidate", "MergedConvNode", "Node", "OpNode", "OutputNode", "Region", "SumNode", "WidthChoice",
]
