"""The search methods and the hyperparameters their papers publish: what ``nasir search`` uses
for every option the user does not give.

Torch-free, so that ``nasir search --help`` lists them without loading torch. Each entry names its
source; where a paper leaves a value open, the authors' released search script decides.

| method   | batch | epochs | weights: SGD lr -> min, schedule     | wd     | arch: Adam lr, wd  | other                       |
|----------|-------|--------|--------------------------------------|--------|--------------------|-----------------------------|
| darts    | 64    | 50     | 0.025 -> 0.001 cosine, momentum 0.9  | 3e-4   | 3e-4, 1e-3         | clip 5                      |
| pc-darts | 256   | 50     | 0.1 -> 0.001 cosine, momentum 0.9    | 3e-4   | 6e-4, 1e-3         | clip 5, arch from epoch 15  |
| gdas     | 256   | 250    | 0.025 -> 0.001 cosine, Nesterov 0.9  | 5e-4   | 3e-4, 1e-3         | tau 10 -> 0.1, clip 5       |
| spos     | 1024  | 120    | 0.5 -> 0 linear, momentum 0.9        | 4e-5   | (no arch step)     | label smoothing 0.1         |

The architecture optimizer is Adam with betas (0.5, 0.999) for every method with one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class MethodDefaults:
    """One method's published settings (see the module table)."""

    #: How the supernet is lowered: every candidate weighted (``supernet``) or one path per step (``sampled``).
    mode: Literal["supernet", "sampled"]
    #: Whether architecture parameters are trained (SPOS trains weights only and searches afterwards).
    arch_step: bool
    batch_size: int
    epochs: int
    lr: float
    lr_min: float
    schedule: Literal["cosine", "linear"]
    momentum: float
    nesterov: bool
    weight_decay: float
    grad_clip: float
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    #: Epochs of weight training before the first architecture step.
    warmup_epochs: int = 0
    tau_max: float = 10.0
    tau_min: float = 0.1
    label_smoothing: float = 0.0
    #: The pass a method's supernet needs, put first in the pipeline if the user's lacks it.
    pipeline: str = ""
    source: str = ""

    def settings(self) -> dict[str, object]:
        """The values ``SearchConfig`` takes (everything but ``mode``, ``arch_step``, ``pipeline``, ``source``)."""
        return {k: v for k, v in asdict(self).items() if k not in ("mode", "arch_step", "pipeline", "source")}


METHODS: dict[str, MethodDefaults] = {
    "darts": MethodDefaults(
        mode="supernet", arch_step=True, batch_size=64, epochs=50, lr=0.025, lr_min=0.001, schedule="cosine",
        momentum=0.9, nesterov=False, weight_decay=3e-4, grad_clip=5.0,
        source="Liu et al., DARTS (ICLR 2019), Sec. 3.1.2; quark0/darts train_search.py"),
    "pc-darts": MethodDefaults(
        mode="supernet", arch_step=True, batch_size=256, epochs=50, lr=0.1, lr_min=0.001, schedule="cosine",
        momentum=0.9, nesterov=False, weight_decay=3e-4, grad_clip=5.0, arch_lr=6e-4, warmup_epochs=15,
        pipeline="partial-channel{k=4}",
        source="Xu et al., PC-DARTS (ICLR 2020), Sec. 4.2; yuhuixu1993/PC-DARTS train_search.py"),
    "gdas": MethodDefaults(
        mode="sampled", arch_step=True, batch_size=256, epochs=250, lr=0.025, lr_min=0.001, schedule="cosine",
        momentum=0.9, nesterov=True, weight_decay=5e-4, grad_clip=5.0,
        source="Dong & Yang, GDAS (CVPR 2019), Sec. 4; D-X-Y/AutoDL-Projects configs/search-opts/GDAS-NASNet-CIFAR.config"),
    "spos": MethodDefaults(
        mode="sampled", arch_step=False, batch_size=1024, epochs=120, lr=0.5, lr_min=0.0, schedule="linear",
        momentum=0.9, nesterov=False, weight_decay=4e-5, grad_clip=0.0, label_smoothing=0.1,
        source="Guo et al., Single Path One-Shot (ECCV 2020), Sec. 4; megvii-model/SinglePathOneShot train.py"),
}


def method_help() -> str:
    """One line per method for ``--help``: its defaults."""
    lines = []
    for name, m in METHODS.items():
        arch = f"Adam {m.arch_lr:g} wd {m.arch_weight_decay:g}" if m.arch_step else "no arch step"
        extra = [f"arch from epoch {m.warmup_epochs}"] if m.warmup_epochs else []
        extra += [f"tau {m.tau_max:g}->{m.tau_min:g}"] if name == "gdas" else []
        extra += [f"label smoothing {m.label_smoothing:g}"] if m.label_smoothing else []
        extra += [f"passes {m.pipeline}"] if m.pipeline else []
        sgd = f"SGD {m.lr:g}->{m.lr_min:g} {m.schedule}{' nesterov' if m.nesterov else ''} wd {m.weight_decay:g}"
        lines.append(f"{name}: batch {m.batch_size}, {m.epochs} epochs, {sgd}, {arch}"
                     + "".join(f", {e}" for e in extra))
    return "; ".join(lines)
