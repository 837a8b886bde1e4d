# NAS-Bench-201 (Dong & Yang, 2020): a 4-node cell DAG, 6 edges, 5 candidate operations each,
# stacked N times in 3 stages with ResNet reduction blocks; every cell shares one architecture
# parameter per edge, so the space has 5^6 = 15625 architectures.
#
# The layers are those of the benchmark's search model (AutoDL-Projects, cell_operations.py and
# search_cells.py): ReLUConvBN's conv has a bias exactly when its BatchNorm has no affine weights,
# and the search cells use affine = false and, unless -D track_running_stats=true, BatchNorms
# without running statistics (batch statistics in evaluation too). The stem, the reduction blocks
# and the classifier keep affine BatchNorms with running statistics and bias-free convs.
#
# `eval = true` gives the benchmark's evaluation network instead (its topology network, TinyNetwork
# with InferCells, cell_infers/ of AutoDL-Projects): the same stages, with affine BatchNorms that keep
# running statistics, and bias-free convs, in the cells too. An NB201 string fixes its cells.

op relu_conv_bn(C, k, stride = 1, affine = false, track_running_stats = true) =
    relu -> conv(C, k, stride, bias = not affine) -> bn(affine = affine, track_running_stats = track_running_stats)

choice nb201_edge(C, track_running_stats = false, affine = false) = one_of {
    none:         zero
    skip_connect: identity
    nor_conv_1x1: relu_conv_bn(C, 1, affine = affine, track_running_stats = track_running_stats)
    nor_conv_3x3: relu_conv_bn(C, 3, affine = affine, track_running_stats = track_running_stats)
    avg_pool_3x3: avg_pool(3, 1, count_include_pad = false)
}

cell nb201_cell(C, nodes = 4, track_running_stats = false, affine = false) shares "cell" {
    input x
    states = [x]
    for i in 1 .. nodes {
        n[i] = sum([nb201_edge(C, track_running_stats, affine)(states[j]) for j in 0 .. i])
        states = states + [n[i]]
    }
    output states[nodes - 1]
}

# the ResNet basic block that halves the resolution between stages
op reduction_block(C) = sum(
    relu_conv_bn(C, 3, 2, affine = true) -> relu_conv_bn(C, 3, 1, affine = true),
    avg_pool(2, 2, padding = 0) -> conv(C, 1)
)

network nb201(C = 16, N = 5, classes = 10, track_running_stats = false, eval = false) {
    input x: [3, 32, 32]
    h = (conv(C, 3) -> bn)(x)
    c = C
    for stage in 0 .. 3 {
        if stage > 0 {
            c = c * 2
            reduce[stage] = reduction_block(c)(h)
            h = reduce[stage]
        }
        for i in 0 .. N {
            cells[stage * N + i] = nb201_cell(c, track_running_stats = track_running_stats or eval, affine = eval)(h)
            h = cells[stage * N + i]
        }
    }
    logits = (bn -> relu -> global_avg_pool -> linear(classes))(h)
    output logits
}
