# The "exaggerated" search space of the TopoNAS ablation (Table VI): the DARTS cell and network
# (NNI variant: no BatchNorm after the pools) with an edge of 15 candidates: the three
# parameter-free operations (skip, max pool, avg pool), 5 separable dilated convolutions
# (relu-dw-pw-bn) and 7 double-stacked separable convolutions (relu-dw-pw-bn twice). The paper does
# not list the kernel sizes; we use (kernel, dilation) pairs that keep every footprint <= 13.

op relu_conv_bn(C, k = 1, stride = 1, affine = false) = relu -> conv(C, k, stride) -> bn(affine = affine)

op sep_conv(C, k, stride = 1, d = 1) =
    relu -> dwconv(k, stride, dilation = d) -> conv(C, 1) -> bn(affine = false)
 -> relu -> dwconv(k, dilation = d)         -> conv(C, 1) -> bn(affine = false)

op dil_conv(C, k, stride = 1, d = 2) = relu -> dwconv(k, stride, dilation = d) -> conv(C, 1) -> bn(affine = false)

choice wide_edge(C, stride) = one_of {
    max_pool_3x3:   max_pool(3, stride)
    avg_pool_3x3:   avg_pool(3, stride, count_include_pad = false)
    skip_connect:   if stride == 1 then identity else factorized_reduce(C, affine = false)
    dil_conv_3x3_d2: dil_conv(C, 3, stride, 2)
    dil_conv_5x5_d2: dil_conv(C, 5, stride, 2)
    dil_conv_7x7_d2: dil_conv(C, 7, stride, 2)
    dil_conv_3x3_d3: dil_conv(C, 3, stride, 3)
    dil_conv_5x5_d3: dil_conv(C, 5, stride, 3)
    sep_conv_3x3:    sep_conv(C, 3, stride)
    sep_conv_5x5:    sep_conv(C, 5, stride)
    sep_conv_7x7:    sep_conv(C, 7, stride)
    sep_conv_9x9:    sep_conv(C, 9, stride)
    sep_conv_11x11:  sep_conv(C, 11, stride)
    sep_conv_3x3_d2: sep_conv(C, 3, stride, 2)
    sep_conv_5x5_d2: sep_conv(C, 5, stride, 2)
}

cell wide_cell(C, reduction, reduction_prev, steps = 4, multiplier = 4)
        shares if reduction then "reduce" else "normal" {
    input s0, s1
    p0 = if reduction_prev then factorized_reduce(C, affine = false)(s0) else relu_conv_bn(C)(s0)
    p1 = relu_conv_bn(C)(s1)
    states = [p0, p1]
    for i in 0 .. steps {
        n[i] = input_choice(2, [wide_edge(C, if reduction and j < 2 then 2 else 1)(states[j])
                                for j in 0 .. len(states)])
        states = states + [n[i]]
    }
    output concat([states[k] for k in len(states) - multiplier .. len(states)])
}

network toponas_exaggerated(C = 16, layers = 8, classes = 10, steps = 4, multiplier = 4, stem_multiplier = 3) {
    input x: [3, 32, 32]
    stem = (conv(stem_multiplier * C, 3) -> bn)(x)
    s0 = stem
    s1 = stem
    c = C
    reduction_prev = false
    for i in 0 .. layers {
        reduction = i == layers // 3 or i == 2 * layers // 3
        if reduction { c = c * 2 }
        cells[i] = wide_cell(c, reduction, reduction_prev, steps, multiplier)(s0, s1)
        s0 = s1
        s1 = cells[i]
        reduction_prev = reduction
    }
    logits = (global_avg_pool -> linear(classes))(s1)
    output logits
}
