"""The weights' optimizer settings that ``nasir search`` (``SearchConfig``) and ``nasir train``
(``TrainConfig``) share: SGD with momentum (Nesterov where the method says), weight decay, a
learning rate annealed from ``lr`` to ``lr_min``, gradient-norm clipping and label smoothing.

Torch-free until an optimizer is built, so that the command lines' ``--help`` loads no torch. The
defaults are DARTS' search settings (``nasir.search.methods``); ``TrainConfig.for_recipe`` replaces
them all with a training recipe's (``nasir.train.recipes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nasir.diagnostics import NasirError
from nasir.search.methods import METHODS

if TYPE_CHECKING:
    import torch

_DARTS = METHODS["darts"]


@dataclass
class SGDSettings:
    """See the module docstring; the learning-rate schedule's shape is the subclass's ``schedule``."""

    lr: float = _DARTS.lr
    lr_min: float = _DARTS.lr_min
    momentum: float = _DARTS.momentum
    nesterov: bool = _DARTS.nesterov
    weight_decay: float = _DARTS.weight_decay
    #: gradient-norm clipping of the weight step (0: none)
    grad_clip: float = _DARTS.grad_clip
    label_smoothing: float = _DARTS.label_smoothing

    def check_momentum(self, who: str = "") -> None:
        if self.nesterov and self.momentum <= 0:
            raise NasirError(f"{who + ' uses ' if who else ''}Nesterov momentum, which needs a momentum > 0, "
                             f"not {self.momentum:g}")

    def optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.SGD:
        import torch

        return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                               nesterov=self.nesterov)

    def cosine(self, done: int, length: int) -> float:
        """The learning rate ``done`` of ``length`` units (epochs or steps) along cosine annealing
        from ``lr`` to ``lr_min``."""
        return self.lr - (self.lr - self.lr_min) * (1 - math.cos(math.pi * done / max(length, 1))) / 2

    def clip(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Clip the gradients' norm to ``grad_clip`` (nothing when it is 0)."""
        if self.grad_clip > 0:
            import torch

            torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip)
