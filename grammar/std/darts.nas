# The DARTS CIFAR-10 search space (Liu et al., "DARTS: Differentiable Architecture Search", 2019),
# written to match the reference `model_search.py` module for module, so the lowered supernet has
# the reference parameter count. Every normal cell shares one architecture parameter per edge, and
# so does every reduction cell (`shares`).
#
# `pool_bn = false` gives the NNI/TopoNAS variant without BatchNorm after the pools (TopoNAS Table II).

op relu_conv_bn(C, k = 1, stride = 1, affine = false) = relu -> conv(C, k, stride) -> bn(affine = affine)

op sep_conv(C, k, stride = 1) =
    relu -> dwconv(k, stride) -> conv(C, 1) -> bn(affine = false)
 -> relu -> dwconv(k)         -> conv(C, 1) -> bn(affine = false)

op dil_conv(C, k, stride = 1) = relu -> dwconv(k, stride, dilation = 2) -> conv(C, 1) -> bn(affine = false)

op pool_norm(pool_bn) = if pool_bn then bn(affine = false) else identity

choice edge(C, stride, pool_bn = true) = one_of {
    none:         zero(stride)
    max_pool_3x3: max_pool(3, stride) -> pool_norm(pool_bn)
    avg_pool_3x3: avg_pool(3, stride, count_include_pad = false) -> pool_norm(pool_bn)
    skip_connect: if stride == 1 then identity else factorized_reduce(C, affine = false)
    sep_conv_3x3: sep_conv(C, 3, stride)
    sep_conv_5x5: sep_conv(C, 5, stride)
    dil_conv_3x3: dil_conv(C, 3, stride)
    dil_conv_5x5: dil_conv(C, 5, stride)
}

cell darts_cell(C, reduction, reduction_prev, steps = 4, multiplier = 4, pool_bn = true)
        shares if reduction then "reduce" else "normal" {
    input s0, s1
    p0 = if reduction_prev then factorized_reduce(C, affine = false)(s0) else relu_conv_bn(C)(s0)
    p1 = relu_conv_bn(C)(s1)
    states = [p0, p1]
    for i in 0 .. steps {
        # every node sums one mixed edge from each earlier state; the derived cell keeps the top 2
        n[i] = input_choice(2, [edge(C, if reduction and j < 2 then 2 else 1, pool_bn)(states[j])
                                for j in 0 .. len(states)])
        states = states + [n[i]]
    }
    output concat([states[k] for k in len(states) - multiplier .. len(states)])
}

network darts(C = 16, layers = 8, classes = 10, steps = 4, multiplier = 4, stem_multiplier = 3,
              pool_bn = true) {
    input x: [3, 32, 32]
    stem = (conv(stem_multiplier * C, 3) -> bn)(x)
    s0 = stem
    s1 = stem
    c = C
    reduction_prev = false
    for i in 0 .. layers {
        reduction = i == layers // 3 or i == 2 * layers // 3
        if reduction { c = c * 2 }
        cells[i] = darts_cell(c, reduction, reduction_prev, steps, multiplier, pool_bn)(s0, s1)
        s0 = s1
        s1 = cells[i]
        reduction_prev = reduction
    }
    logits = (global_avg_pool -> linear(classes))(s1)
    output logits
}
