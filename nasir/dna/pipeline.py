"""The DNA pipeline on a ``.nas`` space, as the CLI runs it: partition, teacher, features,
block training, rating and search, each step's output a file in one work directory:

    workdir/teacher.safetensors    teacher weights + its NetSpec (trained on the bundled data)
    workdir/features.safetensors   teacher block features of the training images
    workdir/blocks/blockK.safetensors   student block checkpoints (resumable)
    workdir/ratings.json           ranked table of every path of every block
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from nasir.checkpoint import CheckpointMeta, build_for_state, load_checkpoint_as, save_checkpoint
from nasir.dna.blocks import block_infos
from nasir.dna.errors import DNAError
from nasir.dna.mbconv import BlockSpec, ChainNet, NetSpec
from nasir.ir.graph import Graph


def teacher_spec_for(graph: Graph, classes: int = 10) -> NetSpec:
    """A ChainNet teacher whose block outputs have the shapes of the student's blocks."""
    blocks = []
    for info in block_infos(graph):
        if not info.input_shape or not info.output_shape or len(info.output_shape) != 3:
            raise DNAError(f"{info.name}: a teacher needs feature-map blocks ([C, H, W] in and out)")
        stride = info.input_shape[1] // info.output_shape[1]
        width = info.output_shape[0]
        blocks.append(BlockSpec([(3, 4), (5, 4)], width, width, max(1, stride)))
    return NetSpec(blocks, stem=16, classes=classes)


class TeacherCheckpoint(CheckpointMeta):
    """Metadata of a teacher checkpoint: the network's description and its test accuracy."""

    kind: Literal["dna-teacher"] = "dna-teacher"
    spec: NetSpec
    accuracy: float | None = None


def save_teacher(path: str | Path, net: ChainNet, accuracy: float | None = None) -> None:
    save_checkpoint(path, dict(net.state_dict()), {"kind": "dna-teacher", "spec": net.spec.to_json(),
                                                   "accuracy": accuracy})


def load_teacher(path: str | Path) -> tuple[ChainNet, dict]:
    """The teacher saved at ``path`` and its metadata (as a dict); its description is checked
    against its weights before the network is built."""
    tensors, meta = load_checkpoint_as(path, TeacherCheckpoint, "DNA teacher", DNAError)
    net = build_for_state(lambda: ChainNet(meta.spec), tensors, str(path), DNAError)
    return net.eval(), meta.model_dump()


def get_teacher(workdir: Path, graph: Graph, images: torch.Tensor, labels: torch.Tensor, test, steps: int,
                device: str, log=print, batch_size: int = 64) -> ChainNet:
    """The teacher in ``workdir`` (checked against the space), or a new one trained on the data."""
    from nasir.dna.train import accuracy, train_classifier

    path = workdir / "teacher.safetensors"
    spec = teacher_spec_for(graph, int(labels.max()) + 1)
    if path.is_file():
        net, meta = load_teacher(path)
        if [b.width for b in net.spec.blocks] != [b.width for b in spec.blocks]:
            raise DNAError(f"{path}: teacher block widths {[b.width for b in net.spec.blocks]} do not match the "
                           f"space's {[b.width for b in spec.blocks]}", hint="use another --workdir")
        log(f"teacher: {path} (test accuracy {meta.get('accuracy')})")
        return net
    torch.manual_seed(0)
    net = ChainNet(spec)
    train_classifier(net, images, labels, steps=steps, batch_size=batch_size, device=device, progress=True,
                     desc="teacher")
    acc = accuracy(net, *test, device=device)
    net.cpu()
    save_teacher(path, net, acc)
    log(f"teacher: trained {steps} steps, {sum(p.numel() for p in net.parameters()):,} params, test accuracy {acc:.1%}")
    return net
