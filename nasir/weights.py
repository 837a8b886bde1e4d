"""Loading weights saved under another model's module names (pretrained checkpoints) by a name map.

A lowered network names its modules after the ``.nas`` file (``layer2.sum.1.conv``); a checkpoint of
the same architecture written by another library names them its own way (torchvision's
``layer2.0.downsample.0``). ``load_renamed`` loads such a state dict through a map of module
prefixes; ``TORCHVISION_RESNET18`` is the map from torchvision's ``resnet18`` to
``std/resnet18.nas`` with ``-D stem=imagenet``, which ``load_torchvision_resnet18`` applies, so
that DANCE (or any training) starts from ImageNet weights:

    state = torch.load("resnet18-f37072fd.pth", weights_only=True)
    load_torchvision_resnet18(model, state)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nasir.diagnostics import NasirError


def _torchvision_resnet18() -> dict[str, str]:
    """torchvision ``resnet18`` module -> ``std/resnet18.nas`` module: the stem (``conv1``, ``bn1``),
    the two basic blocks of each of the four stages (``layerS.B``: ``conv1 bn1 conv2 bn2`` and the
    ``downsample`` conv and BN of the first block of stages 2-4), and the classifier ``fc``."""
    names = {"conv1": "h.conv", "bn1": "h.bn", "fc": "logits.linear"}
    for stage in range(4):
        for block in range(2):
            ours = f"layer{2 * stage + block}.sum"
            theirs = f"layer{stage + 1}.{block}"
            names |= {f"{theirs}.conv1": f"{ours}.0.conv", f"{theirs}.bn1": f"{ours}.0.bn",
                      f"{theirs}.conv2": f"{ours}.0.conv_1", f"{theirs}.bn2": f"{ours}.0.bn_1"}
            if stage > 0 and block == 0:
                names |= {f"{theirs}.downsample.0": f"{ours}.1.conv", f"{theirs}.downsample.1": f"{ours}.1.bn"}
    return names


#: Module names of torchvision's ``resnet18`` -> those of ``std/resnet18.nas -D stem=imagenet``.
TORCHVISION_RESNET18: dict[str, str] = _torchvision_resnet18()


def renamed_state_dict(state: Mapping[str, torch.Tensor], names: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """``state`` with each key's module prefix (all but its last component) replaced by ``names``;
    a key whose module the map does not name is a ``NasirError``."""
    out = {}
    for key, value in state.items():
        module, _, entry = key.rpartition(".")
        if module not in names:
            raise NasirError(f"the checkpoint entry {key!r} belongs to module {module!r}, which the name map does "
                             "not name", hint="the checkpoint is of another architecture")
        out[f"{names[module]}.{entry}"] = value
    return out


def load_renamed(model: nn.Module, state: Mapping[str, torch.Tensor], names: Mapping[str, str], *,
                 strict: bool = True) -> None:
    """Load ``state``, saved under other module names, into ``model`` through the module map ``names``
    (theirs -> ours). Every renamed entry must exist in ``model`` with the same shape; with ``strict``
    every entry of ``model`` must be given too (``strict=False`` leaves the others as they are, e.g.
    the channel gates DANCE adds). A mismatch is a ``NasirError`` naming the entry; nothing is loaded then."""
    renamed = renamed_state_dict(state, names)
    own = model.state_dict()
    for key, value in renamed.items():
        if key not in own:
            raise NasirError(f"the model has no entry {key!r} for the checkpoint's entry mapped to it",
                             hint="check the network's parameters (e.g. -D stem=imagenet for torchvision's ResNet-18)")
        if value.shape != own[key].shape:
            raise NasirError(f"the checkpoint gives {key!r} shape {list(value.shape)}, the model has "
                             f"{list(own[key].shape)}", hint="check -D classes and -D width")
    missing = [key for key in own if key not in renamed]
    if strict and missing:
        raise NasirError(f"the checkpoint gives no value for {len(missing)} entries of the model, e.g. {missing[0]!r}",
                         hint="pass strict=False to keep the model's own values there")
    model.load_state_dict(renamed, strict=False)


def load_torchvision_resnet18(model: nn.Module, state: Mapping[str, torch.Tensor], *, strict: bool = True) -> None:
    """Load a torchvision ``resnet18`` state dict into a lowering of ``std/resnet18.nas -D stem=imagenet``
    (``TORCHVISION_RESNET18``; ``strict`` as for ``load_renamed``)."""
    load_renamed(model, state, TORCHVISION_RESNET18, strict=strict)
