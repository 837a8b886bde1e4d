# VGG-16 with BatchNorm for 32x32 inputs (the CIFAR variant used by DANCE): 13 conv layers,
# "M" marks a 2x2 max pool, one linear classifier on the 512 pooled features.

network vgg16(classes = 10, resolution = 32,
              cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]) {
    input x: [3, resolution, resolution]
    h = x
    k = 0
    for v in cfg {
        if v == "M" {
            pool[k] = max_pool(2, 2, padding = 0)(h)
            h = pool[k]
        } else {
            features[k] = (conv(v, 3) -> bn -> relu)(h)
            h = features[k]
        }
        k = k + 1
    }
    logits = (flatten -> linear(classes))(h)
    output logits
}
