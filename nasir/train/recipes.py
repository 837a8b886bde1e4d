"""The training recipes ``nasir train`` uses for every option the user does not give: the settings
with which the papers train a found architecture from scratch.

Torch-free, so that ``nasir train --help`` lists them without loading torch. Which recipe applies:
``darts`` for the DARTS space (the network named ``darts``: ``std/darts.nas``, search or evaluation
form), ``nb201`` for every other space (NAS-Bench-201, ResNet-18, MBConv, VGG, user spaces);
``--recipe`` chooses another.

| recipe | batch | epochs | SGD: lr -> min, cosine, momentum     | wd   | augmentation          | other                       |
|--------|-------|--------|--------------------------------------|------|-----------------------|-----------------------------|
| darts  | 96    | 600    | 0.025 -> 0 per epoch, 0.9            | 3e-4 | crop, flip, cutout 16 | drop path 0.2, aux 0.4, clip 5 |
| nb201  | 256   | 200    | 0.1 -> 0 per step, Nesterov 0.9      | 5e-4 | crop, flip            |                             |

Drop path rises linearly from 0 to its value over the run.

Crop and flip apply to photos (CIFAR, image folders); TinyShapes is not cropped or flipped (see
``nasir.data.sources.ImageData.crop_flip``). Drop path and the auxiliary loss act only on networks
that have them (the evaluation form of a space, ``runtime.DropPath`` and ``runtime.AuxOutput``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

#: "epoch": cosine annealing stepped once per epoch (DARTS ``train.py``); "step": per step (NB201).
Schedule = Literal["epoch", "step"]


@dataclass(frozen=True)
class Recipe:
    """One paper's training settings (see the module table)."""

    batch_size: int
    epochs: int
    lr: float
    lr_min: float
    #: how often the cosine schedule moves: once per epoch or at every step
    schedule: Schedule
    momentum: float
    nesterov: bool
    weight_decay: float
    #: gradient-norm clip (0: none)
    grad_clip: float
    #: cutout square side (0: none)
    cutout: int
    #: final drop-path probability; epoch ``e`` of ``E`` uses ``drop_path * e / E``
    drop_path: float
    #: weight of the auxiliary head's cross entropy in the loss
    auxiliary_weight: float
    label_smoothing: float = 0.0
    source: str = ""

    def settings(self) -> dict[str, object]:
        """The values ``TrainConfig`` takes (everything but ``source``)."""
        return {k: v for k, v in asdict(self).items() if k != "source"}


RECIPES: dict[str, Recipe] = {
    "darts": Recipe(
        batch_size=96, epochs=600, lr=0.025, lr_min=0.0, schedule="epoch", momentum=0.9, nesterov=False,
        weight_decay=3e-4, grad_clip=5.0, cutout=16, drop_path=0.2, auxiliary_weight=0.4,
        source="Liu et al., DARTS (ICLR 2019), Sec. 3.3 and A.2; quark0/darts cnn/train.py"),
    "nb201": Recipe(
        batch_size=256, epochs=200, lr=0.1, lr_min=0.0, schedule="step", momentum=0.9, nesterov=True,
        weight_decay=5e-4, grad_clip=0.0, cutout=0, drop_path=0.0, auxiliary_weight=0.0,
        source="Dong & Yang, NAS-Bench-201 (ICLR 2020), Sec. 2.3; D-X-Y/AutoDL-Projects "
               "configs/nas-benchmark/hyper-opts/200E.config"),
}


def recipe_for(network: str) -> str:
    """The recipe that applies to a network by default (see the module docstring)."""
    return "darts" if network == "darts" else "nb201"


def recipe_help() -> str:
    """One line per recipe for ``--help``."""
    lines = []
    for name, r in RECIPES.items():
        sgd = f"SGD {r.lr:g}->{r.lr_min:g} cosine per {r.schedule}{' nesterov' if r.nesterov else ''} " \
              f"momentum {r.momentum:g} wd {r.weight_decay:g}"
        extra = [f"cutout {r.cutout}"] if r.cutout else []
        extra += [f"drop path {r.drop_path:g} rising linearly"] if r.drop_path else []
        extra += [f"auxiliary weight {r.auxiliary_weight:g}"] if r.auxiliary_weight else []
        extra += [f"clip {r.grad_clip:g}"] if r.grad_clip else []
        lines.append(f"{name}: batch {r.batch_size}, {r.epochs} epochs, {sgd}" + "".join(f", {e}" for e in extra))
    return "; ".join(lines)
