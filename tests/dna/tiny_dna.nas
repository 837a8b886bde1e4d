# Test copy of the MBConv ops of std/mbconv.nas (DNA Table 1) and a two-block space small enough
# for CPU tests (2 ops per layer).

op mbconv(C_in, C, k = 3, e = 6, stride = 1) =
    if stride == 1 and C_in == C then sum(expand_dw_project(C_in, C, k, e, stride), identity)
    else expand_dw_project(C_in, C, k, e, stride)

op expand_dw_project(C_in, C, k, e, stride) =
    conv(C_in * e, 1) -> bn -> relu6 -> dwconv(k, stride) -> bn -> relu6 -> conv(C, 1) -> bn

# a cell: `layers` searchable MBConv layers of width `ch`, projected to the block width `out`
op mb_cell(C_in, ch, layers, stride, out, kernels = [3, 5, 7], expansions = [3, 6]) =
    mb_layers(C_in, ch, layers, stride, kernels, expansions) -> conv(out, 1) -> bn

op mb_layers(C_in, ch, layers, stride, kernels, expansions) =
    if layers == 1 then mb_layer(C_in, ch, stride, kernels, expansions)
    else mb_layer(C_in, ch, stride, kernels, expansions) -> mb_layers(ch, ch, layers - 1, 1, kernels, expansions)

op mb_layer(C_in, ch, stride, kernels, expansions) =
    mbconv(C_in, ch, k = one_of(kernels), e = one_of(expansions), stride = stride)
# A two-block MBConv space small enough for CPU tests (16x16 images, 2 ops per layer).
network tiny_dna(classes = 10, resolution = 16, stem = 8, stem_stride = 1,
                 widths = [16, 24], strides = [2, 2],
                 cells = [[[1, 8], [2, 8]], [[1, 16]]]) {
    input x: [3, resolution, resolution]
    h = (conv(stem, 3, stem_stride) -> bn -> relu6)(x)
    c_in = stem
    for b in 0 .. len(widths) {
        block "block" + str(b + 1) {
            blocks[b] = choose([["cell" + str(i + 1),
                                 mb_cell(c_in, cells[b][i][1], cells[b][i][0], strides[b], widths[b], [3], [1, 2])]
                                for i in 0 .. len(cells[b])])(h)
        }
        h = blocks[b]
        c_in = widths[b]
    }
    logits = (global_avg_pool -> linear(classes))(h)
    output logits
}
