# The DARTS CIFAR-10 search space (Liu et al., "DARTS: Differentiable Architecture Search", 2019),
# written to match the reference `model_search.py` module for module, so the lowered supernet has
# the reference parameter count. Every normal cell shares one architecture parameter per edge, and
# so does every reduction cell (`shares`).
#
# `pool_bn = false` gives the NNI/TopoNAS variant without BatchNorm after the pools (TopoNAS Table II).
#
# `eval = true` gives the DARTS evaluation network instead (NetworkCIFAR of the reference `model.py`,
# trained with -D C=36 -D layers=20): affine BatchNorms in the cells and their preprocessing, no
# BatchNorm after the pools, a drop path after every operation but the identity, and (unless
# `auxiliary = false`) an auxiliary head on the output of the second reduction cell. Its choices
# are the search network's, so a derived architecture or a DARTS genotype fixes it.

op relu_conv_bn(C, k = 1, stride = 1, affine = false) = relu -> conv(C, k, stride) -> bn(affine = affine)

op sep_conv(C, k, stride = 1, affine = false) =
    relu -> dwconv(k, stride) -> conv(C, 1) -> bn(affine = affine)
 -> relu -> dwconv(k)         -> conv(C, 1) -> bn(affine = affine)

op dil_conv(C, k, stride = 1, affine = false) =
    relu -> dwconv(k, stride, dilation = 2) -> conv(C, 1) -> bn(affine = affine)

op pool_norm(pool_bn) = if pool_bn then bn(affine = false) else identity

# an operation of the evaluation network is followed by a drop path (DARTS drops every path but the identity)
op dropped(m, eval) = if eval then m -> drop_path else m

choice edge(C, stride, pool_bn = true, eval = false) = one_of {
    none:         zero(stride)
    max_pool_3x3: dropped(max_pool(3, stride) -> pool_norm(pool_bn and not eval), eval)
    avg_pool_3x3: dropped(avg_pool(3, stride, count_include_pad = false) -> pool_norm(pool_bn and not eval), eval)
    skip_connect: if stride == 1 then identity else dropped(factorized_reduce(C, affine = eval), eval)
    sep_conv_3x3: dropped(sep_conv(C, 3, stride, eval), eval)
    sep_conv_5x5: dropped(sep_conv(C, 5, stride, eval), eval)
    dil_conv_3x3: dropped(dil_conv(C, 3, stride, eval), eval)
    dil_conv_5x5: dropped(dil_conv(C, 5, stride, eval), eval)
}

cell darts_cell(C, reduction, reduction_prev, steps = 4, multiplier = 4, pool_bn = true, eval = false)
        shares if reduction then "reduce" else "normal" {
    input s0, s1
    p0 = if reduction_prev then factorized_reduce(C, affine = eval)(s0) else relu_conv_bn(C, affine = eval)(s0)
    p1 = relu_conv_bn(C, affine = eval)(s1)
    states = [p0, p1]
    for i in 0 .. steps {
        # every node sums one mixed edge from each earlier state; the derived cell keeps the top 2
        n[i] = input_choice(2, [edge(C, if reduction and j < 2 then 2 else 1, pool_bn, eval)(states[j])
                                for j in 0 .. len(states)])
        states = states + [n[i]]
    }
    output concat([states[k] for k in len(states) - multiplier .. len(states)])
}

# DARTS' AuxiliaryHeadCIFAR, for the 8x8 maps after the second reduction of a 32x32 input
op aux_head_cifar(classes) =
    relu -> avg_pool(5, 3, padding = 0, count_include_pad = false) -> conv(128, 1) -> bn -> relu
 -> conv(768, 2) -> bn -> relu -> flatten -> linear(classes)

network darts(C = 16, layers = 8, classes = 10, steps = 4, multiplier = 4, stem_multiplier = 3,
              pool_bn = true, eval = false, auxiliary = true) {
    input x: [3, 32, 32]
    stem = (conv(stem_multiplier * C, 3) -> bn)(x)
    s0 = stem
    s1 = stem
    c = C
    reduction_prev = false
    for i in 0 .. layers {
        reduction = i == layers // 3 or i == 2 * layers // 3
        if reduction { c = c * 2 }
        cells[i] = darts_cell(c, reduction, reduction_prev, steps, multiplier, pool_bn, eval)(s0, s1)
        s0 = s1
        s1 = cells[i]
        reduction_prev = reduction
        if eval and auxiliary and i == 2 * layers // 3 {
            aux_logits = aux_head_cifar(classes)(s1)
            aux_output aux_logits
        }
    }
    logits = (global_avg_pool -> linear(classes))(s1)
    output logits
}
