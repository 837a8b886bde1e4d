"""Golden IR: the elaborator's output for every std space, and for a space using every DSL feature, is
pinned by a hash of its JSON (``Graph.to_json``), computed before the elaborator was split into modules.

A change here means the front end now builds different IR (node names, attributes, locations...).
If that is intended, print the new hashes with ``_digest`` and update the table.
"""

from __future__ import annotations

import hashlib

import pytest

from nasir.frontends.elaborate import parse_file, parse_string, std_dir, std_path
from nasir.ir.graph import Graph

#: Templates with defaults and value choices, an alias, repeat, parallel modules, a cell applied
#: inside a choice candidate, a sharing cell with a comprehension and input_choice, block and gate.
FEATURES = """
op cbr(C = 8, k = 3) = conv(C, k) -> bn -> relu
op mb(C, e = one_of[3, 6], k = one_of[3, 5]) = pwconv(C * e) -> dwconv(k) -> pwconv(C)
cell res(C) {
    input x
    h = sum(cbr(C), identity)(x)
    output h
}
cell pair(C) shares "pair" {
    input a, b
    e = [one_of { conv: cbr(C) pool: max_pool(3) }(t) for t in [a, b]]
    output input_choice(1, e)
}
network features(C = 8, depth = 2) {
    input x: [3, 16, 16]
    stem = repeat(2, cbr(C))(x)
    block "b0" {
        gate 0.5 {
            body[0] = one_of { cell: res(C) mbconv: mb(C) deep: repeat(2, cbr) -> cbr(C, k = 1) }(stem)
        }
    }
    for i in range(1, depth) {
        body[i] = pair(C)(body[i - 1], stem)
    }
    w = max(C, min([4, len([1, 2])]))
    head = concat(body[depth - 1], (pwconv(w) -> relu)(stem))
    output (global_avg_pool -> flatten -> linear(10))(head)
}
"""

STD_CASES = [
    ("darts", {}, "818a0f5e975cd8b5524cefbafef014ee8f31f55e47a91a1ee67a9f547959743e"),
    ("darts", dict(C=4, layers=3, steps=2, multiplier=2), "a0f82659d1cacc9505de3813dafe6337fc9f9fdf3cc3509d15b74208fb79df19"),
    ("darts", dict(C=4, layers=3, steps=2, multiplier=2, pool_bn=False),
     "1a9c24c75b0515dad9c6da0822c5a4f93a23268bdccc35dd15e5dbbeb41c65c9"),
    ("darts", dict(layers=2), "06c2cb7240f3e70de38d22480bdba9cb77d958f733ec2470e5df3db6fa310632"),
    ("nb201", {}, "a676f014aae2edc63519550a03de97d49bec3918e2b187ec35677b56194dec86"),
    ("nb201", dict(N=1), "8994c2f1c99c5d3d256bc90825ecb53f3ac68cd0b0caf4fbd2fbe601d40e4c95"),
    ("nb201", dict(C=8, N=2, classes=100), "871954243d0a593ed211f1ce89ff637e10d6d5dff97677ff38f74431e62aba32"),
    ("mbconv", {}, "c1fb4c99356fc42ce83cf8991bd9fb382090d95f35af175c125a369bc1c37e55"),
    ("mbconv", dict(resolution=32), "fc8c4475027360062b6fac44408ac0c0d142fd25617759437d7f57f25a78ad7d"),
    ("mbconv", dict(resolution=64, classes=10, stem=32), "6607e47db4e87f8a7dae74003a87abb2b61b30e316ae70a629e5c092f1840b7c"),
    ("resnet18", {}, "c2a58723f79fcb6b8ddcee2cedc49032cf40e6a27120edeaf8964021ae162a20"),
    ("resnet18", dict(width=16, classes=100), "aed4423993f020c96ecfc6634b5a3857462007825e210bbf4944e74eda3f2eeb"),
    ("vgg16", {}, "b45a80de49671b389c22785bbfab54eee5c6007ab3c704d979f447ddfba16a35"),
    ("vgg16", dict(resolution=64, cfg=[8, "M", 16, 16, "M"]), "904bbcbe72c9a35a7274c72fbca110fbf3d01d80bb2a22b85d4261f451e0d622"),
]

#: (Issue 15 changed these once: the cell applied as a whole candidate named its nodes ``.h.0.conv``,
#: which no module path can hold; now ``h.0.conv``. Nothing else in the IR changed.)
FEATURE_CASES = [
    ({}, "655b47ba561ab65c2038a7e1294792db66ed1bbb4b4f419a0cca831d507d527b"),
    (dict(depth=3, C=4), "81de9017fd738404fae6cc1f6d5a84ccf238032f3530add43fb110e322241c05"),
]


def _digest(graph: Graph) -> str:
    """The hash of a graph's JSON, with the std folder's path (which depends on the checkout) elided."""
    return hashlib.sha256(graph.to_json().replace(str(std_dir()), "<std>").encode()).hexdigest()


@pytest.mark.parametrize("space, overrides, expected", STD_CASES)
def test_std_space_ir_is_unchanged(space, overrides, expected):
    assert _digest(parse_file(std_path(space), **overrides)) == expected


@pytest.mark.parametrize("overrides, expected", FEATURE_CASES)
def test_feature_space_ir_is_unchanged(overrides, expected):
    assert _digest(parse_string(FEATURES, filename="features.nas", **overrides)) == expected
