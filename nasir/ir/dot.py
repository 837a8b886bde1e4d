"""Graphviz export: the IR as a picture, candidates of a choice drawn as clusters.

Uses the ``graphviz`` package to build the dot source; rendering to PNG/SVG needs the Graphviz
``dot`` binary, which ``nasir compile --emit dot`` does not require.

Names in the IR are user text (a ``.nas`` file or IR JSON), so none reaches the dot source raw:
node IDs are generated (``n0``, ``n1``: a name with ``:`` would read as a port in an edge), and
every label and cluster name is escaped (``_text``) so that ``<...>`` cannot become an HTML-like
label, a quote cannot end the string and a backslash cannot start a Graphviz escape.
"""

from __future__ import annotations

import itertools

import graphviz

from nasir.ir.graph import Graph
from nasir.ir.nodes import BlockNode, ChoiceNode, MergedConvNode, OpNode, Region

_CONV_COLOR = "#cfe2f3"
_COLORS = {"bn": "#fff2cc", "relu": "#eeeeee", "max_pool": "#d9ead3", "avg_pool": "#d9ead3", "zero": "#ffffff"}


def _text(*lines: str) -> graphviz.quoting.NoHtml:
    """Lines of user text as one Graphviz label: backslashes doubled (no escape sequences),
    lines joined by Graphviz's ``\\n``, marked as not HTML (so it is always quoted)."""
    return graphviz.nohtml("\\n".join(line.replace("\\", "\\\\") for line in lines))


def _label(node) -> graphviz.quoting.NoHtml:
    shape = "x".join(map(str, node.shape)) if node.shape else "?"
    if isinstance(node, OpNode):
        return _text(node.name, node.attrs.signature(), f"[{shape}]")
    if isinstance(node, MergedConvNode):
        ks = " ".join(f"{k.kernel}x{k.kernel}d{k.dilation}" for k in node.kernels)
        return _text(node.name, f"merged_conv({ks})", f"[{shape}]")
    return _text(node.name, node.kind, f"[{shape}]")


def to_dot(graph: Graph) -> str:
    dot = graphviz.Digraph(_text(graph.name), graph_attr={"rankdir": "TB", "fontsize": "10"},
                           node_attr={"shape": "box", "style": "rounded,filled", "fontsize": "9", "fillcolor": "white"})
    _emit(dot, graph.body, "", itertools.count())
    return dot.source


def _emit(dot: graphviz.Digraph, region: Region, prefix: str, ids_from: itertools.count) -> dict[str, str]:
    """Draw ``region`` (its nodes' paths start with ``prefix``); returns the generated ID of each
    of its nodes by node name."""
    ids: dict[str, str] = {}
    for node in region.nodes:
        nid = f"n{next(ids_from)}"
        ids[node.name] = nid
        path = f"{prefix}{node.name}"
        if isinstance(node, (ChoiceNode, BlockNode)):
            dot.node(nid, _label(node), shape="diamond" if isinstance(node, ChoiceNode) else "box3d",
                     fillcolor="#f4cccc" if isinstance(node, ChoiceNode) else "#d0e0e3")
            subs = [(c.name, c.body) for c in node.candidates] if isinstance(node, ChoiceNode) else [("body", node.body)]
            for local, body in subs:
                with dot.subgraph(name=_text(f"cluster_{path}.{local}")) as sub:
                    sub.attr(label=_text(local), style="dashed", fontsize="9")
                    inner = _emit(sub, body, f"{path}.{local}.", ids_from)
                for inp in body.inputs:
                    src = ids.get(node.inputs[inp.index]) if inp.index < len(node.inputs) else None
                    if src:
                        dot.edge(src, inner[inp.name], style="dotted")
                for out in body.outputs:
                    dot.edge(inner[out.name], nid, style="dotted")
            continue
        if isinstance(node, OpNode):
            fill = _CONV_COLOR if node.attrs.conv_like else _COLORS.get(node.attrs.op, "white")
        else:
            fill = "#ead1dc" if node.kind in ("input", "output") else "white"
        dot.node(nid, _label(node), fillcolor=fill)
        for src in node.inputs:
            dot.edge(ids[src], nid)
    return ids


def render(graph: Graph, path: str, fmt: str = "svg") -> None:
    """Render the graph with the Graphviz ``dot`` program, atomically, to ``path``."""
    import shutil
    import subprocess

    from nasir.diagnostics import NasirError
    from nasir.io import atomic_write

    exe = shutil.which("dot")
    if exe is None:
        raise NasirError("rendering needs the Graphviz `dot` program", hint="install it (e.g. `apt-get install graphviz`) "
                         "or use --emit dot and render elsewhere")
    source = to_dot(graph)

    def write(tmp: str) -> None:
        proc = subprocess.run([exe, f"-T{fmt}", "-o", tmp], input=source, text=True, capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise NasirError(f"dot failed: {proc.stderr.strip()[:500]}")

    atomic_write(path, write)
