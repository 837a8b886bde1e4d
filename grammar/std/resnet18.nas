# ResNet-18. At the defaults, the variant for 32x32 inputs (the CIFAR variant used by DANCE): a 3x3
# stem, no pooling. `stem = "imagenet"` gives torchvision's `resnet18` instead: a 7x7 stride-2 conv,
# BN, ReLU and a 3x3 stride-2 max pool, for 224x224 inputs and 1000 classes; its `state_dict` loads a
# torchvision checkpoint through `nasir.weights.load_torchvision_resnet18`. A fixed backbone, no
# choices. The dance-gates pass finds the channel groups coupled by the residual adds;
# `gate 0.5 { ... }` around statements sets a per-layer budget.

op basic_block(C, stride = 1, downsample = false) = sum(
    conv(C, 3, stride) -> bn -> relu -> conv(C, 3) -> bn,
    if downsample then conv(C, 1, stride) -> bn else identity
) -> relu

network resnet18(stem = "cifar", classes = if stem == "imagenet" then 1000 else 10, width = 64,
                 resolution = if stem == "imagenet" then 224 else 32) {
    input x: [3, resolution, resolution]
    h = if stem == "imagenet" then (conv(width, 7, 2) -> bn -> relu -> max_pool(3, 2))(x)
        else if stem == "cifar" then (conv(width, 3) -> bn -> relu)(x)
        else error("unknown stem " + stem + ": cifar (3x3 conv, 32x32 inputs) or imagenet (7x7 conv and max pool, 224x224)")
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
