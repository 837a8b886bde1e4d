import pytest
import torch

import nasir
from nasir.diagnostics import NasirError
from nasir.dna.blocks import block_infos
from nasir.dna.ir_space import ir_path_costs, space_from_graph
from nasir.ir.cost import arch_cost
from nasir.ir.nodes import BlockNode
from nasir.lowering import lower
from nasir.passmanager import PassManager

SMALL = dict(widths=[16, 24], strides=[2, 2], cells=[[[1, 8], [2, 8]], [[1, 16]]], resolution=32, classes=10, stem=8)


@pytest.fixture(scope="module")
def small():
    return nasir.compile_file("std/mbconv.nas", **SMALL)


def test_partition_from_annotations(small):
    pm = PassManager.parse("dna-partition")
    g = pm.run(small)
    infos = block_infos(g)
    assert [b.name for b in infos] == ["block1", "block2"]
    assert [b.size for b in infos] == [6 + 36, 6]
    assert infos[0].output_shape == [16, 8, 8] and infos[1].input_shape == [16, 8, 8]
    assert [(c.layers, c.width, c.size) for c in infos[0].cells] == [(1, 8, 6), (2, 8, 36)]
    assert g.search_space_size() == small.search_space_size() == 42 * 6
    notes = pm.records[-1].result.notes
    assert "whole space: 252 architectures" in notes and pm.records[-1].result.stats == {"blocks": 2}


def test_partition_is_exact(small):
    g = PassManager.parse("dna-partition").run(small)
    arch = {k: 1 for k in small.arch if len(small.arch[k].candidates) > 1} | {
        k: 0 for k in small.arch if len(small.arch[k].candidates) == 1}
    before, after = lower(small, "fixed", arch=arch, seed=0).eval(), lower(g, "fixed", arch=arch, seed=0).eval()
    after.load_state_dict(dict(zip(after.state_dict(), before.state_dict().values())))
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(before(x), after(x))


def test_auto_partition_at_stage_boundaries(small):
    g = PassManager.parse("dna-partition{auto=true}").run(small)
    infos = block_infos(g)
    # the stem (no choices) folds into block 1, the head stays outside
    assert [b.size for b in infos] == [42, 6]
    assert infos[0].input_shape == [3, 32, 32]
    with pytest.raises(NasirError, match="stage boundaries"):
        PassManager.parse("dna-partition{auto=true,blocks=9}").run(small)


def test_full_mbconv_space_sizes():
    g = PassManager.parse("dna-partition").run(nasir.compile_file("std/mbconv.nas", resolution=32))
    sizes = [b.size for b in block_infos(g)]
    assert sizes == [288, 1548, 1548, 2808, 16848, 6]  # DNA Table 1 with 6 ops per layer
    assert g.search_space_size() == 195898498887057408


def test_chain_space_from_ir(small):
    g = PassManager.parse("dna-partition").run(small)
    space, head, names = space_from_graph(g)
    assert names == ["block1", "block2"] and space.size == 252
    arch = [next(b.paths()) for b in space.blocks]  # cell 0, first candidate everywhere
    x = torch.randn(2, 3, 32, 32)
    assert head(space(x, arch)).shape == (2, 10)
    ir = arch_cost(g, {k: 0 for k in g.arch})
    head_params = sum(p.numel() for p in head.parameters())
    chain = sum(b.path_costs(f)[0].params for b, f in zip(space.blocks, [x, space.blocks[0](x, arch[0])]))
    assert chain + head_params == ir.params


def test_chain_space_needs_blocks(small):
    with pytest.raises(ValueError, match="dna-partition"):
        space_from_graph(small)
    assert not any(isinstance(n, BlockNode) for n in small.body.nodes)


def test_ir_cost_tables_match_measured_chain(small):
    g = PassManager.parse("dna-partition").run(small)
    space, _, _ = space_from_graph(g)
    tables = ir_path_costs(g)
    x = torch.randn(1, 3, 32, 32)
    for k, block in enumerate(space.blocks):
        measured = block.path_costs(x)
        assert [(c.params, c.flops) for c in measured] == tables[k]
        x = block(x, next(block.paths()))


def test_path_names_pick_the_paths_of_the_chain_space(small):
    """Every path of every block, named as IR picks, costs in the IR what the chain space's path costs."""
    from nasir.dna.blocks import path_names
    from nasir.ir.arch import resolve_arch

    g = PassManager.parse("dna-partition").run(small)
    space, _, _ = space_from_graph(g)
    names, tables = path_names(g), ir_path_costs(g)
    assert [[len(c.layers) for c in n.cells] for n in names] == [[len(c.layers) for c in b.cells] for b in space.blocks]
    first = [next(b.paths()) for b in space.blocks]

    def ir_params(paths) -> int:
        return arch_cost(g, resolve_arch(g, {p: c for n, q in zip(names, paths) for p, c in n.picks(q).items()})).params

    base = [t[0][0] for t in tables]  # params of each block's first path
    outside = ir_params(first) - sum(base)  # the head after the last block
    for k, block in enumerate(space.blocks):
        for i, path in enumerate(block.paths()):
            assert ir_params(first[:k] + [path] + first[k + 1:]) == outside + sum(base) - base[k] + tables[k][i][0]
    assert names[0].label(first[0]) == "cell1: k3_e3" and names[0].label((1, (0, 5, 3, 0))) == "cell2: k7_e6 k5_e6"
