"""Human-readable summaries: ``nasir show`` (tree with cost per choice) and ``nasir count``."""

from __future__ import annotations

from nasir.ir.cost import candidate_costs, graph_cost
from nasir.ir.graph import Graph, log10_size
from nasir.ir.nodes import ArchWeighted, BlockNode, ChoiceNode, MergedConvNode, Region
from nasir.ir.verify import infer_shapes


def _si(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def size_line(graph: Graph) -> str:
    size = graph.search_space_size()
    text = f"search space: {size} architectures (10^{log10_size(size):.2f})"
    if graph.input_groups:
        ruled = graph.search_space_size(input_rule=True)
        text += f"; {ruled} (10^{log10_size(ruled):.2f}) after keeping top-k inputs per node"
    return text


def summary(graph: Graph, max_choices: int | None = None) -> str:
    """Network name, totals, search-space size, and each distinct choice with its candidates' cost."""
    infer_shapes(graph)
    total = graph_cost(graph)
    out_shapes = ", ".join("x".join(map(str, o.shape or [])) for o in graph.body.outputs)
    ins = ", ".join(f"{i.name}[{'x'.join(map(str, i.shape or []))}]" for i in graph.body.inputs)
    lines = [
        f"network {graph.name}({', '.join(f'{k}={v}' for k, v in graph.params.items())})",
        f"  inputs {ins} -> outputs [{out_shapes}]",
        f"  supernet: {total.params:,} params, {_si(total.flops)} FLOPs (MACs), "
        f"{sum(1 for _ in graph.walk())} nodes, {len(graph.arch)} architecture parameters",
        f"  {size_line(graph)}",
    ]
    shown: set[str] = set()
    count = 0
    for path, node, _ in graph.walk():
        if not isinstance(node, ArchWeighted):
            continue
        key = node.arch if isinstance(node, MergedConvNode) else f"{node.arch}:{[c.name for c in node.candidates]}"
        if key in shown:
            continue
        shown.add(key)
        count += 1
        if max_choices is not None and count > max_choices:
            continue
        users = len(graph.arch_users(node.arch))
        lines.append(f"  {path}  [{node.arch}{f', used by {users} nodes' if users > 1 else ''}]")
        if isinstance(node, ChoiceNode):
            for cand, cost in zip(node.candidates, candidate_costs(node)):
                lines.append(f"    {cand.name:<24}{cost.params:>12,} params {_si(cost.flops):>10} FLOPs")
        else:
            ks = ", ".join(f"{k.name}" for k in node.kernels)
            lines.append(f"    merged_conv of {ks}")
    if max_choices is not None and count > max_choices:
        lines.append(f"  ... {count - max_choices} more distinct choices (use --all)")
    return "\n".join(lines)


def tree(region: Region, indent: str = "") -> list[str]:
    lines = []
    for node in region.nodes:
        if isinstance(node, ChoiceNode):
            lines.append(f"{indent}{node.name}: one_of[{node.arch}]")
            for c in node.candidates:
                lines.append(f"{indent}  {c.name}")
                lines.extend(tree(c.body, indent + "    "))
        elif isinstance(node, BlockNode):
            lines.append(f"{indent}{node.name}: block")
            lines.extend(tree(node.body, indent + "  "))
    return lines
