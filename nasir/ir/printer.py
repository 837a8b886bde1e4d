"""Textual IR: one line per node, nested regions indented (printed by --print-ir-after-all)."""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.ir.nodes import (
    BlockNode,
    ChoiceNode,
    GateNode,
    InputNode,
    MergedConvNode,
    OpNode,
    OutputNode,
    Region,
    SumNode,
)


def _shape(s: list[int] | None) -> str:
    return "[" + "x".join(map(str, s)) + "]" if s else "[?]"


def print_graph(graph: Graph) -> str:
    lines = [f"graph @{graph.name} {{"]
    _region(graph.body, lines, "  ")
    lines.append("}")
    for name, a in graph.arch.items():
        lines.append(f"arch %{name} : {a.kind}<{', '.join(a.candidates)}>")
    for grp in graph.input_groups:
        lines.append(f"input_group {grp.name} keep {grp.n_chosen} of ({', '.join(grp.members)})")
    return "\n".join(lines)


def _region(region: Region, lines: list[str], ind: str) -> None:
    for n in region.nodes:
        args = ", ".join(f"%{i}" for i in n.inputs)
        tags = "".join([f" block={n.block}" if n.block else "", f" budget={n.budget}" if n.budget else ""])
        if isinstance(n, InputNode):
            lines.append(f"{ind}%{n.name} = input {n.index} : {_shape(n.shape)}")
        elif isinstance(n, OpNode):
            width = f" width=%{n.width.arch}{n.width.widths}" if n.width is not None else ""
            lines.append(f"{ind}%{n.name} = {n.attrs.signature()}({args}){width} : {_shape(n.shape)}{tags}")
        elif isinstance(n, ChoiceNode):
            head = f"{ind}%{n.name} = choice %{n.arch} covers={n.covers} domain={n.domain}({args})"
            lines.append(f"{head} : {_shape(n.shape)}{tags} {{")
            for c in n.candidates:
                lines.append(f"{ind}  ^{c.name}:")
                _region(c.body, lines, ind + "    ")
            lines.append(f"{ind}}}")
        elif isinstance(n, MergedConvNode):
            ks = ", ".join(f"{k.name}:{k.kernel}x{k.kernel}d{k.dilation}{'+pw' if k.pointwise else ''}"
                           f"{'+bias' if k.bias else ''}" for k in n.kernels)
            lines.append(f"{ind}%{n.name} = merged_conv %{n.arch} covers={n.covers} domain={n.domain} "
                         f"[{ks}] stride={n.stride} normalize={str(n.normalize).lower()}"
                         f"{f' form={n.form}' if n.form else ''}({args}) : {_shape(n.shape)}")
        elif isinstance(n, GateNode):
            lines.append(f"{ind}%{n.name} = gate group={n.group}({args}) : {_shape(n.shape)}")
        elif isinstance(n, SumNode) and n.edge_weights is not None:
            lines.append(f"{ind}%{n.name} = sum edges=%{n.edge_weights}({args}) : {_shape(n.shape)}{tags}")
        elif isinstance(n, OutputNode) and n.role is not None:
            lines.append(f"{ind}%{n.name} = output {n.role}({args}) : {_shape(n.shape)}")
        elif isinstance(n, BlockNode):
            lines.append(f"{ind}%{n.name} = block({args}) : {_shape(n.shape)} {{")
            _region(n.body, lines, ind + "  ")
            lines.append(f"{ind}}}")
        else:
            lines.append(f"{ind}%{n.name} = {n.kind}({args}) : {_shape(n.shape)}{tags}")
