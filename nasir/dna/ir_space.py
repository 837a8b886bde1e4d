"""From a partitioned IR graph to a DNA chain space of lowered ``nn.Module``s.

After ``dna-partition``, every top-level ``block`` node is one DNA block. A block whose only
top-level choice picks between cells becomes a ``Block`` with one ``Cell`` per candidate (fixed
nodes before or after that choice become fixed layers of every cell); any other block is a single
cell. Inside a cell, every choice is a layer whose candidates are lowered one by one, and each
stretch of fixed nodes between choices is one fixed layer. Nodes before the first block (the
stem) become a fixed first layer of block 1 (DNA feeds block 1 the image); nodes after the last
block form the ``head``.

Everything is lowered with ``nasir.lower(..., mode="fixed")`` on a small graph built around the
sub-region, so candidates are the same modules the compiler produces for a fixed network.
"""

from __future__ import annotations

import copy

from torch import nn

from nasir.dna.blocks import cell_choice, chain_layers, ordered_picks
from nasir.dna.errors import DNAError
from nasir.dna.space import Block, Cell, ChainSpace
from nasir.ir.graph import Graph
from nasir.ir.nodes import ArchWeighted, BlockNode, ChoiceNode, InputNode, MergedConvNode, Node, OutputNode, Region
from nasir.ir.rewrite import used_arch


def _lower_nodes(graph: Graph, nodes: list[Node], src: str, src_shape: list[int] | None, name: str) -> nn.Module:
    """Lower a chain segment reading value ``src`` into a module ``x -> last node's value``."""
    from nasir.lowering import lower

    if not nodes:
        return nn.Identity()
    members = {n.name for n in nodes}
    x = "x"
    while x in members:
        x = "_" + x
    region = Region()
    region.add(InputNode(name=x, index=0, shape=src_shape))
    for n in nodes:
        c = n.model_copy(deep=True)
        c.inputs = [x if i == src else i for i in c.inputs]
        if any(i not in members and i != x for i in c.inputs):
            raise DNAError(f"{name}: node {n.name!r} reads a value from outside the chain; DNA layers must form a chain")
        region.add(c)
    out = "out"
    while out in members:
        out = "_" + out
    region.add(OutputNode(name=out, inputs=[nodes[-1].name], shape=nodes[-1].shape))
    used = used_arch(region)
    sub = Graph(name=name.replace(".", "_"), body=region, arch={k: v for k, v in graph.arch.items() if k in used})
    return lower(sub, "fixed", arch={a: 0 for a in used}, seed=0)


def _candidate(graph: Graph, choice: ChoiceNode, cand_index: int, name: str) -> nn.Module:
    cand = choice.candidates[cand_index]
    if any(isinstance(n, ArchWeighted) for n in cand.body.nodes):
        raise DNAError(f"{name}: candidate {cand.name!r} holds further choices; a DNA layer candidate must be fixed")
    body = [n for n in cand.body.nodes if n.kind not in ("input", "output")]
    src = cand.body.inputs[0]
    out = cand.body.outputs[0].inputs[0]
    if out == src.name:
        return nn.Identity()
    return _lower_nodes(graph, body, src.name, src.shape, f"{name}.{cand.name}")


def _chain_layers(graph: Graph, nodes: list[Node], src: str, src_shape, name: str) -> list[list[nn.Module]]:
    """Split a chain into layers (``chain_layers``): each choice a layer of candidates, fixed stretches one layer."""
    if any(isinstance(n, MergedConvNode) for n in nodes):
        raise DNAError(f"{name}: merged convolutions (reparam) cannot be split into DNA paths; partition before reparam")
    layers: list[list[nn.Module]] = []
    cur, cur_shape = src, src_shape
    for layer in chain_layers(nodes):
        if isinstance(layer, ChoiceNode):
            if layer.inputs != [cur]:
                raise DNAError(f"{name}: choice {layer.name!r} does not read the previous layer's output; not a chain")
            layers.append([_candidate(graph, layer, j, f"{name}.{layer.name}") for j, _ in ordered_picks(graph, layer)])
            cur, cur_shape = layer.name, layer.shape
        else:
            layers.append([_lower_nodes(graph, layer, cur, cur_shape, f"{name}.{layer[0].name}")])
            cur, cur_shape = layer[-1].name, layer[-1].shape
    return layers


def space_from_graph(graph: Graph) -> tuple[ChainSpace, nn.Module, list[str]]:
    """(chain space, head module, block names) of a graph partitioned by ``dna-partition``."""
    top = graph.body
    blocks = [n for n in top.nodes if isinstance(n, BlockNode)]
    if not blocks:
        raise DNAError("the graph has no DNA blocks", hint="run the dna-partition pass first (--passes dna-partition)")
    first = top.nodes.index(blocks[0])
    last = top.nodes.index(blocks[-1])
    stem = [n for n in top.nodes[:first] if n.kind != "input"]
    head = [n for n in top.nodes[last + 1:] if n.kind != "output"]
    inp = top.inputs[0]
    built = []
    for k, b in enumerate(blocks):
        body = [n for n in b.body.nodes if n.kind not in ("input", "output")]
        prefix_layers = []
        if k == 0 and stem:
            prefix_layers = [[_lower_nodes(graph, stem, inp.name, inp.shape, "stem")]]
        src = b.body.inputs[0]
        choice = next((n for n in body if isinstance(n, ChoiceNode)), None)
        cells_choice = cell_choice(b)
        if cells_choice is None:
            cells = [Cell(prefix_layers + _chain_layers(graph, body, src.name, src.shape, b.name), name="cell")]
        else:
            i = body.index(choice)
            before, after = body[:i], body[i + 1:]
            pre = _chain_layers(graph, before, src.name, src.shape, b.name) if before else []
            cells = []
            for j, _ in ordered_picks(graph, choice):
                cand = choice.candidates[j]
                cbody = [n for n in cand.body.nodes if n.kind not in ("input", "output")]
                cin = cand.body.inputs[0]
                layers = _chain_layers(graph, cbody, cin.name, cin.shape, f"{b.name}.{cand.name}")
                post = _chain_layers(graph, after, choice.name, choice.shape, b.name) if after else []
                # every cell owns its fixed layers: cells are trained side by side, not shared
                cells.append(Cell(copy.deepcopy(prefix_layers + pre) + layers + post, name=cand.name))
        built.append(Block(cells, name=b.name))
    head_mod = _lower_nodes(graph, head, blocks[-1].name, blocks[-1].shape, "head") if head else nn.Identity()
    return ChainSpace(built), head_mod, [b.name for b in blocks]


def ir_path_costs(graph: Graph) -> list[list[tuple[int, int]]]:
    """Per block, (params, FLOPs) of every path in ``Block.paths()`` order, from the IR cost model
    (no lowering, no forward: fast even for the full 224x224 MBConv space)."""
    import itertools

    from nasir.ir.cost import Cost, node_cost, region_cost
    from nasir.ir.verify import infer_shapes

    infer_shapes(graph)
    top = graph.body
    blocks = [n for n in top.nodes if isinstance(n, BlockNode)]
    stem = Cost()
    for n in top.nodes[:top.nodes.index(blocks[0])] if blocks else []:
        stem = stem + node_cost(n, top)  # the stem is block 1's first layer in the chain space
    out = []
    for k, b in enumerate(blocks):
        choice = cell_choice(b)
        regions = [b.body] if choice is None else [choice.candidates[j].body for _, j in
                                                   sorted((min(c), j) for j, c in enumerate(choice.covers))]
        def fixed(region: Region) -> Cost:
            total = Cost()
            for n in region.nodes:
                if not isinstance(n, ChoiceNode):
                    total = total + node_cost(n, region)
            return total

        outer = (fixed(b.body) if choice is not None else Cost()) + (stem if k == 0 else Cost())
        table = []
        for region in regions:
            base = fixed(region) + outer
            layers = []
            for n in region.nodes:
                if isinstance(n, ChoiceNode):
                    order = [j for _, j in sorted((min(c), j) for j, c in enumerate(n.covers))]
                    layers.append([region_cost(n.candidates[j].body) for j in order])
            for combo in itertools.product(*layers):
                total = base
                for c in combo:
                    total = total + c
                table.append((total.params, total.flops))
        out.append(table)
    return out
