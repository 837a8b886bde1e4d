"""Human-readable summaries: ``nasir show`` (tree with cost per choice) and ``nasir count``."""

from __future__ import annotations

from collections import Counter

from nasir.ir.cost import aux_head_cost, candidate_costs, graph_cost, width_costs
from nasir.ir.graph import Graph, log10_size
from nasir.ir.merge_forms import DEVICE_KINDS, choose_form
from nasir.ir.nodes import ArchWeighted, BlockNode, ChoiceNode, MergedConvNode, OpNode, Region
from nasir.ir.rewrite import width_ops
from nasir.ir.verify import infer_shapes
from nasir.ir.width import WidthAnalysis, has_widths


def _si(n: int) -> str:
    """1.23G style; beyond 10^15 (only tampered or absurd graphs) a decimal exponent computed on the
    integer's digits, since such counts may not fit a float."""
    if abs(n) >= 10**15:
        digits = str(abs(n))
        return f"{'-' if n < 0 else ''}{digits[0]}.{digits[1:3]}e{len(digits) - 1}"
    for unit, div in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
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


def _forms(node: MergedConvNode, region: Region) -> dict[str, str]:
    """Device kind -> the form ``node`` is computed in: the recorded one, else the cost model's pick
    (what the supernet and sampled lowerings compute it in on that kind of device)."""
    c_in, h, w = region[node.inputs[0]].shape
    return {dev: node.form or choose_form(node, c_in, (h, w), dev) for dev in DEVICE_KINDS}


def _form_counts(forms, device: str) -> str:
    counts = Counter(f[device] for f in forms)
    return f"{device} " + ", ".join(f"{form} {k}" for form, k in sorted(counts.items()))


def summary(graph: Graph, max_choices: int | None = None) -> str:
    """Network name, totals, search-space size, and each distinct choice with its candidates' cost
    (for a width choice: the cost of the layers following it, at each width)."""
    infer_shapes(graph)
    widths = WidthAnalysis(graph) if has_widths(graph) else None
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
    if graph.body.aux_outputs:
        head = aux_head_cost(graph)
        lines.insert(3, f"  auxiliary head (training only, in the totals): {head.params:,} params, "
                        f"{_si(head.flops)} FLOPs (MACs)")
    forms = {path: _forms(node, region) for path, node, region in graph.walk() if isinstance(node, MergedConvNode)}
    if forms:
        lines.append(f"  merged convs: {len(forms)}; forms by device kind (recorded, or the cost model's pick when "
                     f"lowered): {'; '.join(_form_counts(forms.values(), dev) for dev in DEVICE_KINDS)}")
    shown: set[str] = set()
    count = 0
    for path, node, region in graph.walk():
        if isinstance(node, OpNode) and node.width is not None and widths is not None:
            if f"width:{node.width.arch}" in shown:
                continue
            shown.add(f"width:{node.width.arch}")
            count += 1
            if max_choices is None or count <= max_choices:
                lines.extend(_width_lines(graph, path, node, widths))
            continue
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
            picked = f"{node.form} form" if node.form else \
                "cost model: " + ", ".join(f"{dev} {form}" for dev, form in _forms(node, region).items())
            lines.append(f"    merged_conv of {ks} ({picked})")
    if max_choices is not None and count > max_choices:
        lines.append(f"  ... {count - max_choices} more distinct choices (use --all)")
    return "\n".join(lines)


def _width_lines(graph: Graph, path: str, node: OpNode, widths: WidthAnalysis) -> list[str]:
    """A width choice: its producers, and per width the cost of the layers that follow it."""
    arch = node.width.arch
    users = sum(1 for op in width_ops(graph.body) if op.width.arch == arch)
    lines = [f"  {path}  [{arch}, width choice{f' of {users} ops' if users > 1 else ''}]"]
    for name, width, cost in zip(graph.arch[arch].candidates, node.width.widths, width_costs(graph, arch, widths)):
        label = f"{name} ({node.attrs.width_attr}={width})"
        lines.append(f"    {label:<24}{cost.params:>12,} params {_si(cost.flops):>10} FLOPs")
    return lines


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
