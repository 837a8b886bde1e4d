# The MBConv search space of DNA (Wang et al., "DNA family", Table 1): six blocks matched to the
# stages of an EfficientNet teacher; each block chooses one of up to three cells of different depth
# and width, and every layer of a cell chooses kernel {3, 5, 7} x expansion {3, 6}. A cell ends in a
# 1x1 projection to the block's (teacher's) width so that cells are interchangeable; the whole space
# has about 2 x 10^17 architectures.

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

network mbconv_space(classes = 1000, resolution = 224, stem = 64,
                     # the choices of every MBConv layer: kernel size x expansion ratio
                     kernels = [3, 5, 7], expansions = [3, 6],
                     # per block: teacher width, stride, and (layers, channels) of each student cell
                     widths = [48, 80, 160, 224, 384, 640],
                     strides = [2, 2, 2, 1, 2, 1],
                     cells = [[[2, 24], [3, 24], [2, 32]],
                              [[2, 40], [3, 40], [4, 40]],
                              [[2, 80], [3, 80], [4, 80]],
                              [[3, 112], [4, 112], [4, 96]],
                              [[4, 192], [5, 192], [5, 160]],
                              [[1, 320]]]) {
    input x: [3, resolution, resolution]
    h = (conv(stem, 3, 2) -> bn -> relu6)(x)
    c_in = stem
    for b in 0 .. len(widths) {
        block "block" + str(b + 1) {
            blocks[b] = choose([["cell" + str(i + 1),
                                 mb_cell(c_in, cells[b][i][1], cells[b][i][0], strides[b], widths[b],
                                         kernels, expansions)]
                                for i in 0 .. len(cells[b])])(h)
        }
        h = blocks[b]
        c_in = widths[b]
    }
    logits = (conv(1280, 1) -> bn -> relu6 -> global_avg_pool -> linear(classes))(h)
    output logits
}
