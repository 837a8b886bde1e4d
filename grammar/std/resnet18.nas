# ResNet-18 for 32x32 inputs (the CIFAR variant used by DANCE): a fixed backbone, no choices.
# The dance-gates pass finds the channel groups coupled by the residual adds; `gate 0.5 { ... }`
# around statements sets a per-layer budget.

op basic_block(C, stride = 1, downsample = false) = sum(
    conv(C, 3, stride) -> bn -> relu -> conv(C, 3) -> bn,
    if downsample then conv(C, 1, stride) -> bn else identity
) -> relu

network resnet18(classes = 10, width = 64, resolution = 32) {
    input x: [3, resolution, resolution]
    h = (conv(width, 3) -> bn -> relu)(x)
    c_in = width
    for stage in 0 .. 4 {
        c = if stage == 0 then width else width * 2 ** stage
        for i in 0 .. 2 {
            stride = if stage > 0 and i == 0 then 2 else 1
            layer[stage * 2 + i] = basic_block(c, stride, stride != 1 or c_in != c)(h)
            h = layer[stage * 2 + i]
            c_in = c
        }
    }
    logits = (global_avg_pool -> linear(classes))(h)
    output logits
}
