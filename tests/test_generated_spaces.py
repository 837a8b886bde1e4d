"""Property checks on generated search spaces (``nasir.testing.random_space``).

For every generated space and every pipeline of the passes that apply to supernets:

* an exact pipeline computes the same function in float64, in supernet mode, in training mode and
  in eval mode after a few training steps (running statistics carried over);
* after any pipeline the supernet, sampled and fixed lowerings build and agree on a one-hot
  architecture (the fixed network, plain modules only, with the supernet's weights folded in; and
  the plain architecture's IR, ``nasir.ir.fix``, lowered), and (unless kernels are normalized, which
  changes every candidate on purpose) the fixed network equals the original's fixed network at that
  architecture;
* ``nasir count``'s figures (plain and top-k inputs) equal brute-force enumeration on small spaces,
  before and after the passes;
* ``topo-simplify`` is idempotent and reaches the same fixpoint from wherever ``pms`` and ``fms``
  left the graph.

CI checks 200 spaces, each over one pipeline and one ``topo-simplify`` starting point (rotating
with the seed, so every pipeline sees a dozen spaces). ``NASIR_GENERATED=N`` checks N spaces, each
over every pipeline and every starting point: the long run of docs/benchmarks.md;
``NASIR_GENERATED_FIRST=K`` starts it at seed K, so that slices of one long run can go to several
processes or machines.
"""

from __future__ import annotations

import math
import os
import random
import re

import pytest
import torch

from nasir.exporting import plain_network
from nasir.ir.graph import Graph
from nasir.ir.printer import print_graph
from nasir.lowering import NasirModule, lower
from nasir.passmanager import PassManager, pass_names
from nasir.runtime import ChoiceModule, FixedSampler, MergedConv
from nasir.testing import (
    GeneratedSpace,
    brute_force_size,
    carry_weights,
    random_space,
)
from nasir.testing.spaces import MODULE_ATTRIBUTE_NAMES

#: The long run: every pipeline on every space.
LONG = bool(os.environ.get("NASIR_GENERATED"))
COUNT = int(os.environ.get("NASIR_GENERATED") or 200)
FIRST = int(os.environ.get("NASIR_GENERATED_FIRST") or 0)

PIPELINES = [
    "canonicalize",
    "dead-code",
    "pms",
    "pms{approximate=false}",
    "fms",
    "topo-simplify",
    "topo-simplify{approximate=false}",
    "reparam",
    "kernel-norm",
    "reparam{kernel_norm=true}",
    "reparam,kernel-norm",
    "pms{approximate=false},reparam",
    "topo-simplify,reparam",
    "topo-simplify,reparam{kernel_norm=true}",
    "canonicalize,dead-code,topo-simplify{approximate=false},reparam",
    "topo-simplify{approximate=false},reparam,select-merge-form{form=grouped}",
    "reparam,select-merge-form{form=separate}",
]
#: Pipelines of a search-only pass: a supernet of other widths, so it has weights of its own and its
#: fixed network is not the original's; with edge weights (on by default) the supernet scales edges
#: the fixed network sums, so the lowering modes are compared without them.
SEARCH_ONLY_PIPELINES = [
    "partial-channel{k=2,edge_norm=false}",
    "partial-channel{k=2,edge_norm=false},topo-simplify,reparam",
]
#: Registered passes that do not apply to a plain supernet (they need DNA blocks, gates or an architecture).
NOT_SUPERNET_PASSES = {"dna-partition", "dance-gates", "dance-extract", "fix-arch"}
#: (starting point, variant): the variant of ``topo-simplify`` must reach from the starting point
#: the fixpoint it reaches from the original graph.
TOPO_STARTS = [("pms", "topo-simplify"), ("fms", "topo-simplify"), ("pms,fms", "topo-simplify"),
               ("fms,pms", "topo-simplify"), ("pms{approximate=false}", "topo-simplify"),
               ("pms{approximate=false}", "topo-simplify{approximate=false}")]
#: Enumerate the count only below this many (assignments x kept-edge subsets).
BRUTE_FORCE_LIMIT = 4_000
STEPS = 2


def _rotating(items: list, seed: int) -> list:
    """All of ``items`` in the long run, else the one this seed's turn falls on."""
    return items if LONG else [items[seed % len(items)]]


def _run(graph: Graph, pipeline: str) -> tuple[Graph, PassManager]:
    pm = PassManager.parse(pipeline, stats=False)
    return pm.run(graph), pm


def _random_arch(graph: Graph, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    return {name: rng.randrange(param.size) for name, param in sorted(graph.arch.items())}


def _input(x_shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*x_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _assert_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=lambda m: f"{what}: {m}")


def _train_steps(module: NasirModule, x_shape: tuple[int, ...]) -> None:
    """Training-mode forwards: they move the BatchNorm running statistics away from their initial values."""
    module.train()
    with torch.no_grad():
        for step in range(STEPS):
            module(_input(x_shape, 100 + step))


def _copy_state(source: NasirModule, target: NasirModule) -> None:
    """Load ``source``'s weights and statistics into ``target`` (one graph, another mode: same paths;
    a fixed target takes the first channels of width choices)."""
    state = source.state_dict()
    missing = [k for k in target.state_dict() if k not in state]
    assert not missing, f"the {target.ir_mode} lowering has modules the supernet lacks: {missing}"
    target.load_state_dict(target.sliced_state_dict(state))


def _reset_statistics(module: NasirModule) -> NasirModule:
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    return module


class _Original:
    """The original space lowered once for all its pipelines: the supernet (random architecture
    weights, statistics after a few training steps) and the fixed network at a random architecture."""

    def __init__(self, space: GeneratedSpace):
        self.graph = space.graph
        self.x_shape = space.batch_shape()
        self.arch = _random_arch(self.graph, space.seed)
        self.supernet = lower(self.graph, "supernet", seed=0).double()
        with torch.no_grad():
            for p in self.supernet.arch_parameters():
                p.normal_(generator=torch.Generator().manual_seed(space.seed))
        _train_steps(self.supernet, self.x_shape)
        self.state = {k: v.clone() for k, v in self.supernet.state_dict().items()}
        self.fixed = lower(self.graph, "fixed", arch=self.arch, seed=1).double()
        _copy_state(self.supernet, self.fixed)
        self.fixed_state = _reset_statistics(self.fixed).state_dict()
        self.fixed_state = {k: v.clone() for k, v in self.fixed_state.items()}

    def rewritten_supernet(self, after: Graph) -> NasirModule:
        """``after`` lowered with the original supernet's weights, statistics and architecture weights."""
        self.supernet.load_state_dict(self.state)
        module = lower(after, "supernet", seed=2).double()
        carry_weights(self.supernet, module, after)
        return module


def check_exact(original: _Original, after: Graph, supernet: NasirModule) -> None:
    """An exact pipeline's supernet computes the original's function, in eval mode (statistics
    after training steps) and in training mode (batch statistics)."""
    x = _input(original.x_shape, 3)
    for train in (False, True):
        with torch.no_grad():
            expected, got = original.supernet.train(train)(x), supernet.train(train)(x)
        _assert_close(got, expected, f"supernet after an exact pipeline, {'train' if train else 'eval'} mode")


def check_modes_agree(after: Graph, supernet: NasirModule, arch: dict[str, int], x_shape: tuple[int, ...]) -> NasirModule:
    """Supernet (one-hot architecture weights), sampled (fixed sampler) and fixed lowerings of ``after``
    compute one function, with the supernet's weights and statistics after training steps."""
    with torch.no_grad():
        for key, p in supernet.arch.items():  # one-hot to 1e-87, below rounding; exactly one-hot would
            p.fill_(-200.0)                    # make the derived weights of unpicked groups 0 / 0
            p[arch[supernet.arch_names[key]]] = 0.0
    _train_steps(supernet, x_shape)
    sampled = lower(after, "sampled", sampler=FixedSampler(arch), seed=3).double()
    fixed = lower(after, "fixed", arch=arch, seed=4).double()
    _copy_state(supernet, sampled)
    fixed.load_state_dict(fixed.sliced_state_dict(supernet.state_dict()))  # merged kernels folded into plain convs
    _, plain = plain_network(after, arch, fixed)
    x = _input(x_shape, 4)
    for train in (False, True):
        mode = "train" if train else "eval"
        with torch.no_grad():
            expected = supernet.train(train)(x)
            _assert_close(fixed.train(train)(x), expected, f"fixed vs one-hot supernet, {mode} mode")
            _assert_close(sampled.train(train)(x), expected, f"sampled vs one-hot supernet, {mode} mode")
            _assert_close(plain.train(train)(x), expected, f"plain architecture (fixed IR) vs one-hot supernet, {mode} mode")
    assert not any(isinstance(m, (MergedConv, ChoiceModule)) for m in fixed.modules()), "a supernet module in a fixed network"
    return fixed


def check_fixed_equivalent(original: _Original, fixed_after: NasirModule) -> None:
    """The fixed networks before and after the pipeline compute one function, in training mode at
    every step and in eval mode after the steps.

    Even an approximate sharing pass keeps the fixed network: a one-hot path through a shared
    module is the original path. The weights came through the supernets (``carry_weights``), where
    every member of a group exists; running statistics are trained on both sides from their
    initial values instead of carried, since a shared BatchNorm's statistics in a fixed network are
    the chosen member's, whose name the rewritten graph does not keep.
    """
    original.fixed.load_state_dict(original.fixed_state)
    _reset_statistics(fixed_after)
    for step in range(STEPS + 1):
        train = step < STEPS
        x = _input(original.x_shape, 200 + step)
        with torch.no_grad():
            expected, got = original.fixed.train(train)(x), fixed_after.train(train)(x)
        _assert_close(got, expected, f"fixed networks before and after, {'train' if train else 'eval'} mode")


def check_pipeline(original: _Original, pipeline: str) -> None:
    after, pm = _run(original.graph, pipeline)
    search_only = any(p.search_only for p in pm.passes)  # a supernet of other widths: weights of its own
    supernet = lower(after, "supernet", seed=2).double() if search_only else original.rewritten_supernet(after)
    if pm.exact:
        check_exact(original, after, supernet)
    arch = {name: i for name, i in original.arch.items() if name in after.arch}
    fixed = check_modes_agree(after, supernet, arch, original.x_shape)
    if "kernel" not in pipeline and not search_only:  # normalized kernels change every candidate, on purpose
        check_fixed_equivalent(original, fixed)
    check_count_kept(original.graph, after)


def check_count(graph: Graph) -> None:
    """Both ``nasir count`` figures (plain, and keeping the top-k inputs) equal brute force on small spaces."""
    for input_rule in (False, True):
        combos = math.prod(a.size for a in graph.arch.values())
        if input_rule:
            combos *= math.prod(math.comb(len(g.members), g.n_chosen) for g in graph.input_groups)
        if combos <= BRUTE_FORCE_LIMIT:
            assert graph.search_space_size(input_rule) == brute_force_size(graph, input_rule), f"input_rule={input_rule}"


def check_count_kept(original: Graph, after: Graph) -> None:
    """Passes change the supernet, never the search space: both figures stay the original's."""
    for input_rule in (False, True):
        assert after.search_space_size(input_rule) == original.search_space_size(input_rule), \
            f"input_rule={input_rule}: the size changed"


def _structure(graph: Graph) -> str:
    """The printed IR without node names: ops, attributes, shapes, covers and candidate names.

    Undoing a sharing cannot tell which name each member gave a module it shared (only the first
    member's survives), so after ``pms`` or ``fms`` a parameter-free module of ``topo-simplify``'s
    result may be ``relu_1`` where it would have been ``relu``.
    """
    return re.sub(r"%[\w.]+", "%", print_graph(graph))


def check_topo_fixpoint(space: GeneratedSpace, starts: list[tuple[str, str]]) -> None:
    """Each ``topo-simplify`` variant of ``starts`` is idempotent and reaches from the starting point
    the fixpoint it reaches from the original graph."""
    fixpoints: dict[str, str] = {}
    for start, topo in starts:
        if topo not in fixpoints:
            once, _ = _run(space.graph, topo)
            twice, pm = _run(once, topo)
            assert not pm.records[-1].result.changed and print_graph(twice) == print_graph(once), \
                f"{topo} is not idempotent"
            fixpoints[topo] = _structure(once)
        got, _ = _run(space.graph, f"{start},{topo}")
        assert _structure(got) == fixpoints[topo], f"{start},{topo} differs from {topo}"


def test_generator_is_seeded_and_covers_what_it_promises():
    texts = [random_space(seed).text for seed in range(200)]
    assert texts[:3] == [random_space(seed).text for seed in range(3)]
    text = "\n".join(texts)
    for feature in ("groups = 2", "dwconv(1", "dwconv(5", "dilation = 2", "dwconv(3, stride) -> conv(C, 1)",
                    "relu -> dwconv", "-> bn(affine = false) -> relu ->", "max_pool", "count_include_pad = false",
                    "identity", "zero(stride)", "factorized_reduce", "one_of [", "sum(conv", "input_choice", "shares",
                    "a: zero(stride)", "conv(C * one_of [1, 2], 1)", "relu -> dwconv(one_of [3, 5], stride)", "tie_w",
                    "linear(one_of [2, 4])"):
        assert feature in text, feature
    assert re.search(r"\n {4,}\w+: (relu -> )?one_of {", text), "no choice nested in a candidate"
    assert re.search(r"\bch\d+\(\d+, 2\)", text), "no stride-2 choice"
    assert re.search(r"\bcell\d+\(\d+, true, ", text), "no reduction cell"
    assert any(f"{name}:" in text or f"{name} =" in text for name in MODULE_ATTRIBUTE_NAMES)
    assert any(random_space(seed).input_shape[1] % 2 for seed in range(200))


def test_every_supernet_pass_is_checked():
    checked = {p.name for pipeline in PIPELINES + SEARCH_ONLY_PIPELINES for p in PassManager.parse(pipeline).passes}
    assert checked == set(pass_names()) - NOT_SUPERNET_PASSES


@pytest.mark.parametrize("seed", range(FIRST, FIRST + COUNT))
def test_generated_space(seed):
    space = random_space(seed)
    stage = "count"
    try:
        check_count(space.graph)
        stage = "lowering"
        original = _Original(space)
        for stage in [*_rotating(PIPELINES, seed), *_rotating(SEARCH_ONLY_PIPELINES, seed)]:
            check_pipeline(original, stage)
        stage = "topo-simplify fixpoint"
        check_topo_fixpoint(space, _rotating(TOPO_STARTS, seed))
    except Exception as err:
        raise AssertionError(f"generated space {seed}, {stage}: {type(err).__name__}: {err}\n{space.text}") from err
