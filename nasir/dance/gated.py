"""A gated network: a lowered IR graph whose gates are driven by DANCE select gates.

``nasir.lower`` turns every IR gate node into a ``ChannelGate`` (a fixed 0/1 mask buffer).
``GatedNetwork`` replaces each of them by a ``GateSite`` that asks the group's ``SelectGate`` for a
mask once per forward and shares it with every other site of the group, so coupled layers (a
residual stream) always keep the same channels. The first site of a group in program order is the
one whose features F_l the gate reads.

Modes (``set_mode``):

* ``off``: gates open, the backbone alone (stage 1, "gates frozen");
* ``sample``: a fresh architecture per forward, Gumbel noise and exact-C_l sampling (stage 2);
* ``deterministic``: no noise, the top C_l channels of p for this batch (stage 3 generation);
* ``fixed``: given masks (``set_masks``), for evaluating or comparing a chosen architecture.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from nasir.dance.errors import DanceError
from nasir.dance.extract import extract
from nasir.dance.gate import MODES, BatchRepr, SelectGate
from nasir.dance.insert import GateGroup, gate_groups
from nasir.ir.graph import Graph
from nasir.ir.rewrite import used_arch
from nasir.lowering import lower
from nasir.runtime import ChannelGate


class _Context:
    """Per-forward state shared by the sites of one network (plain object: not a module)."""

    def __init__(self) -> None:
        self.mode = "off"
        self.embedding: torch.Tensor | None = None
        self.cache: dict[str, torch.Tensor] = {}
        self.fixed: dict[str, torch.Tensor] = {}
        self.gates: dict[str, SelectGate] = {}
        self.generator: torch.Generator | None = None

    def mask(self, group: str, x: torch.Tensor) -> torch.Tensor | None:
        if self.mode == "off":
            return None
        if self.mode == "fixed":
            return self.fixed.get(group)
        if group not in self.cache:
            assert self.embedding is not None
            gate = self.gates[group]
            self.cache[group] = gate(x, self.embedding, stochastic=self.mode == "sample", generator=self.generator)
        return self.cache[group]


class GateSite(nn.Module):
    """Where an IR gate node was: multiplies channels by its group's mask of this forward."""

    def __init__(self, group: str, channels: int, context: _Context):
        super().__init__()
        self.group = group
        self.channels = channels
        self._context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self._context.mask(self.group, x)
        if mask is None:
            return x
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * mask.to(device=x.device, dtype=x.dtype).view(shape)

    def extra_repr(self) -> str:
        return f"group={self.group!r}, channels={self.channels}"


def _key(group: str) -> str:
    return re.sub(r"\W", "_", group)


class GatedNetwork(nn.Module):
    """Backbone (lowered gated graph) + one ``SelectGate`` per gate group + the batch representation."""

    def __init__(self, graph: Graph, embed_dim: int = 32, hidden: int = 64, tau: float = 1.0,
                 lambdas: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0), alpha: float = 0.1,
                 noise: float = 1.0, seed: int | None = None):
        super().__init__()
        #: constructor options, stored in checkpoints so a network can be rebuilt from one
        self.hparams = {"embed_dim": embed_dim, "hidden": hidden, "tau": tau, "lambdas": list(lambdas), "alpha": alpha,
                        "noise": noise}
        self.groups: dict[str, GateGroup] = gate_groups(graph)
        if not self.groups:
            raise DanceError(f"graph {graph.name!r} has no gates", hint="run the dance-gates pass first")
        self.graph = graph
        mode = "supernet" if used_arch(graph.body) else "fixed"
        self.backbone = lower(graph, mode, arch={} if mode == "fixed" else None, seed=seed)
        self._context = _Context()
        shapes = {path: node.shape for path, node, _ in graph.walk()}
        self.gates = nn.ModuleDict()
        for name, group in self.groups.items():
            spatial = len(shapes[group.gates[0]] or []) == 3
            self.gates[_key(name)] = SelectGate(group.channels, embed_dim, hidden, spatial, group.budget, tau, lambdas,
                                                alpha, noise)
            self._context.gates[name] = self.gates[_key(name)]
        self.batch_repr = BatchRepr(list(graph.body.inputs[0].shape or []), embed_dim)
        self._replace_sites()

    def _replace_sites(self) -> None:
        for target, module in list(self.backbone.named_modules()):
            if isinstance(module, ChannelGate):
                parent_name, _, leaf = target.rpartition(".")
                parent = self.backbone.get_submodule(parent_name) if parent_name else self.backbone
                setattr(parent, leaf, GateSite(module.group, module.mask.numel(), self._context))

    # -- running --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self._context
        ctx.cache = {}
        ctx.embedding = self.batch_repr(x) if ctx.mode in ("sample", "deterministic") else None
        return self.backbone(x)

    @property
    def mode(self) -> str:
        return self._context.mode

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise DanceError(f"unknown gate mode {mode!r}; choose one of {', '.join(MODES)}")
        self._context.mode = mode

    def set_generator(self, generator: torch.Generator | None) -> None:
        self._context.generator = generator

    def set_budget(self, budget: float | int | Mapping[str, float | int]) -> None:
        """One budget for every group (fraction or count) or a mapping group -> budget."""
        items = budget.items() if isinstance(budget, Mapping) else ((g, budget) for g in self.groups)
        for group, value in items:
            self.gate(group).set_budget(value)

    def set_masks(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Evaluate the architecture given by ``masks`` (groups not named stay open)."""
        fixed = {}
        for group, mask in masks.items():
            t = torch.as_tensor(mask, dtype=torch.float32).flatten()
            if t.numel() != self.groups[self._known(group)].channels:
                raise DanceError(f"mask of {group!r} has {t.numel()} entries, the group has "
                                 f"{self.groups[group].channels} channels")
            fixed[group] = t.to(next(self.parameters()).device)
        self._context.fixed = fixed
        self.set_mode("fixed")

    def gate(self, group: str) -> SelectGate:
        return self.gates[_key(self._known(group))]

    def _known(self, group: str) -> str:
        if group not in self.groups:
            raise DanceError(f"unknown gate group {group!r}", hint=f"groups: {', '.join(self.groups)}")
        return group

    def last_masks(self) -> dict[str, torch.Tensor]:
        """The hard masks of the last forward in ``sample``/``deterministic`` mode."""
        return {g: m.detach().round() for g, m in self._context.cache.items()}

    # -- parameter sets (separate optimizers in stage 2) -----------------------------------------
    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def gate_parameters(self) -> list[nn.Parameter]:
        return list(self.gates.parameters())

    def repr_parameters(self) -> list[nn.Parameter]:
        return list(self.batch_repr.parameters())

    # -- architectures ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, data: torch.Tensor | Iterable[torch.Tensor], budget: float | int | Mapping | None = None,
                 batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Stage 3: the architecture for ``data`` (a tensor or batches) and ``budget``, in one call.

        Each batch gives p per group (no noise); the kept channels are the top C_l of p averaged
        over the batches, so the result does not depend on how the data was split. BatchNorms use
        the batch's statistics, as in stage 2: their running statistics were gathered over many
        sampled architectures and describe none of the ones being generated (measured: generating
        with them picked clearly worse channels), and they are left unchanged."""
        if budget is not None:
            self.set_budget(budget)
        was_training, mode = self.training, self.mode
        self.eval()
        norms = [m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:  # batch statistics, running statistics untouched (see the docstring)
            m.train()
            m.momentum = 0.0
        self.set_mode("deterministic")
        sums: dict[str, torch.Tensor] = {}
        device = next(self.parameters()).device
        chunks = data.split(batch_size) if isinstance(data, torch.Tensor) else data
        try:
            for x in chunks:
                if x.shape[0] < 2:
                    continue
                self(x.to(device))
                for g in self.groups:
                    p = self.gate(g).last["probs"].float()
                    sums[g] = sums.get(g, 0) + p
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.train(was_training)
            self._context.mode = mode
        if not sums:
            raise DanceError("generate() needs at least one batch of data")
        masks = {}
        for g, total in sums.items():
            keep = self.gate(g).keep
            masks[g] = torch.zeros_like(total).scatter(0, torch.topk(total, keep).indices, 1.0)
        return masks

    def extract(self, masks: Mapping[str, torch.Tensor]) -> tuple[Graph, nn.Module]:
        """The physically smaller network for ``masks``, with the backbone's weights copied."""
        state = {k: v for k, v in self.backbone.state_dict().items()}
        small, weights = extract(self.graph, {g: m.cpu() for g, m in masks.items()}, state)
        mode = self.backbone.ir_mode
        module = lower(small, mode, arch={} if mode == "fixed" else None)
        module.load_state_dict(weights)
        return small, module.to(next(self.parameters()).device)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
