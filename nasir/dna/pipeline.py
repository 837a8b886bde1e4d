"""The DNA pipeline on a ``.nas`` space, as the CLI runs it: partition, teacher, features,
block training, rating and search, each step's output a file in one work directory:

    workdir/teacher.safetensors    teacher weights + its NetSpec (trained on the bundled data)
    workdir/teacher.partial.safetensors   the teacher's training while it runs (resumable)
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
from nasir.save_schedule import CHECKPOINT_MINUTES


def teacher_spec_for(graph: Graph, classes: int = 10) -> NetSpec:
    """A ChainNet teacher whose block outputs have the shapes of the student's blocks.

    The student's first block takes the image through the network's stem (``std/mbconv.nas``: a
    stride-2 convolution), the teacher's through its own: the teacher's stem gets the stride that
    takes the image to the first block's input, and each teacher block the stride of its student
    block, so that block boundaries agree at any resolution, odd sizes included.
    """
    infos = block_infos(graph)
    for info in infos:
        if not info.input_shape or not info.output_shape or len(info.output_shape) != 3:
            raise DNAError(f"{info.name}: a teacher needs feature-map blocks ([C, H, W] in and out)")
    image = graph.body.inputs[0].shape
    if not image or len(image) != 3:
        raise DNAError("a teacher needs an image input ([C, H, W])")
    stem_stride = _same_padding_stride(image, infos[0].input_shape, "the stem") if infos else 1
    blocks = [BlockSpec([(3, 4), (5, 4)], info.output_shape[0], info.output_shape[0],
                        _same_padding_stride(info.input_shape, info.output_shape, info.name)) for info in infos]
    return NetSpec(blocks, stem=16, classes=classes, stem_stride=stem_stride)


def _same_padding_stride(src: list[int], dst: list[int], what: str) -> int:
    """The stride ``s`` of an odd-kernel layer with 'same' padding (the teacher's convolutions) that
    takes the spatial size of ``src`` to that of ``dst``: ``ceil(n / s)`` for each of H and W."""
    for stride in range(1, max(src[1:]) + 1):
        if all(-(-n // stride) == m for n, m in zip(src[1:], dst[1:])):
            return stride
    raise DNAError(f"{what}: no stride takes {src[1:]} to {dst[1:]} as a 'same'-padded teacher layer would")


def _block_shapes(spec: NetSpec) -> list[tuple[int, int]]:
    """What fixes the teacher's block boundaries: (width, stride) of the stem, then of every block."""
    return [(spec.stem, spec.stem_stride)] + [(b.width, b.stride) for b in spec.blocks]


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
                device: str, log=print, batch_size: int = 64, checkpoint_every: int = 50,
                checkpoint_minutes: float = CHECKPOINT_MINUTES) -> ChainNet:
    """The teacher in ``workdir`` (checked against the space), or a new one trained on the data;
    its training saves progress to ``teacher.partial.safetensors`` and continues from there."""
    from nasir.dna.train import accuracy, train_classifier

    path = workdir / "teacher.safetensors"
    spec = teacher_spec_for(graph, int(labels.max()) + 1)
    if path.is_file():
        net, meta = load_teacher(path)
        if _block_shapes(net.spec) != _block_shapes(spec):
            raise DNAError(f"{path}: teacher blocks (width, stride) {_block_shapes(net.spec)} do not match the "
                           f"space's {_block_shapes(spec)}", hint="use another --workdir")
        log(f"teacher: {path} (test accuracy {meta.get('accuracy')})")
        return net
    torch.manual_seed(0)
    net = ChainNet(spec)
    partial = workdir / "teacher.partial.safetensors"
    train_classifier(net, images, labels, steps=steps, batch_size=batch_size, device=device, progress=True,
                     desc="teacher", checkpoint=partial, checkpoint_every=checkpoint_every,
                     checkpoint_minutes=checkpoint_minutes, identity=spec.to_json())
    acc = accuracy(net, *test, device=device)
    net.cpu()
    save_teacher(path, net, acc)
    partial.unlink(missing_ok=True)
    log(f"teacher: trained {steps} steps, {sum(p.numel() for p in net.parameters()):,} params, test accuracy {acc:.1%}")
    return net
