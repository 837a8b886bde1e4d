"""DNA+ (Sec. 3.4, Eq. 9): progressive generations of teachers.

Generation 1 distills from a given teacher. Each later generation takes the architecture searched
in the previous one, scales it (EfficientNet-style depth and width multipliers; a resolution
multiplier for the input), retrains it from scratch on labels, and uses it as the new teacher.
The final student is the last generation's searched architecture, which the caller retrains
without scaling.

Every step resumes: block checkpoints of each generation resume, a teacher's training saves its
progress to ``genN/teacher.partial.safetensors`` and continues from it, and a retrained teacher is
saved as ``genN/teacher.safetensors`` and reused when the loop runs again.

Only the teacher changes between generations; the student space keeps its depths and widths,
with each block's last projection sized to the current teacher's block width. When the teacher
runs at a higher resolution its block features are resized (area interpolation) to the student's
feature sizes, which are those of the teacher at the base resolution.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import torch
import torch.nn.functional as F

from nasir.dna.distill import DistillConfig, train_blocks
from nasir.dna.errors import DNAError
from nasir.dna.mbconv import ChainNet, NetSpec, SpaceSpec, arch_to_spec, scale_spec, student_space
from nasir.dna.rating import BlockRating, rate_block, save_ratings
from nasir.dna.search import Choice, constrained_search
from nasir.dna.space import path_to_json
from nasir.dna.teacher import TeacherBlocks, compute_features
from nasir.dna.train import accuracy, resize, train_classifier


@dataclass
class PlusConfig:
    generations: int = 2
    depth: float = 1.2
    width: float = 1.1
    resolution: float = 1.0
    #: "params" or "flops"
    cost: str = "params"
    limit: float | None = None
    distill: DistillConfig = field(default_factory=DistillConfig)
    teacher_steps: int = 300
    teacher_lr: float = 0.05
    batch_size: int = 64
    base_resolution: int = 32
    rate_samples: int = 256


@dataclass
class Generation:
    index: int
    teacher: NetSpec | None
    teacher_accuracy: float | None
    choice: Choice
    student: NetSpec
    ratings: list[BlockRating]

    def to_json(self) -> dict:
        return {"generation": self.index, "teacher": None if self.teacher is None else self.teacher.to_json(),
                "teacher_accuracy": self.teacher_accuracy, "score": self.choice.score, "cost": self.choice.cost,
                "arch": [path_to_json(r.paths[i]) for r, i in zip(self.ratings, self.choice.indices)],
                "student": self.student.to_json()}


def block_widths(teacher: TeacherBlocks, example: torch.Tensor) -> list[int]:
    with torch.no_grad():
        was = teacher.training
        teacher.eval()
        feats = teacher.features(example[:2])
        teacher.train(was)
    return [int(f.shape[1]) for f in feats[1:]]


def match_sizes(features: list[torch.Tensor], sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Resize teacher features [input, block outs...] to the student's spatial sizes."""
    out = []
    for f, hw in zip(features, sizes):
        out.append(f if tuple(f.shape[-2:]) == tuple(hw) else F.interpolate(f, size=hw, mode="area"))
    return out


def search_generation(teacher: TeacherBlocks, space_spec: SpaceSpec, images: torch.Tensor, config: PlusConfig,
                      workdir: FsPath, device: str, resolution: int | None, progress: bool = False
                      ) -> tuple[Choice, list[BlockRating], list[int]]:
    """Distill a fresh student supernet from ``teacher``, rate every path, search under the limit."""
    feats = compute_features(teacher, resize(images, resolution), device=device)
    widths = [int(f.shape[1]) for f in feats[1:]]
    torch.manual_seed(config.distill.seed)
    space = student_space(space_spec, widths)
    # student feature sizes: run one path of each block at the base resolution
    sizes, x = [tuple(images.shape[-2:])], images[:1]
    with torch.no_grad():
        space.eval()
        for block in space.blocks:
            x = block(x, next(block.paths()))
            sizes.append(tuple(x.shape[-2:]))
    feats = match_sizes(feats, sizes)
    feats[0] = images
    logs = train_blocks(list(space.blocks), feats, config.distill, workdir / "blocks", device=device,
                        progress=progress)
    n = min(config.rate_samples, images.shape[0])
    ratings = [rate_block(b, feats[k][-n:], feats[k + 1][-n:], device=device, head=lg.head)
               for k, (b, lg) in enumerate(zip(space.blocks, logs))]
    save_ratings(workdir / "ratings.json", ratings)
    costs = [r.params if config.cost == "params" else r.flops for r in ratings]
    choice = constrained_search([r.scores for r in ratings], costs, config.limit)
    return choice, ratings, widths


def next_teacher(spec: NetSpec, images: torch.Tensor, labels: torch.Tensor, config: PlusConfig, gen: int,
                 gdir: FsPath, device: str, resolution: int | None, test: tuple[torch.Tensor, torch.Tensor] | None,
                 progress: bool, log: Callable[[str], None]) -> tuple[ChainNet, float | None]:
    """Train the teacher of generation ``gen + 1`` (the scaled student of generation ``gen``; for
    ``gen = 0`` the first teacher), or reuse the one a previous (interrupted) run saved in
    ``gdir/teacher.safetensors`` for the same spec."""
    from nasir.dna.pipeline import load_teacher, save_teacher

    path = gdir / "teacher.safetensors"
    if path.is_file():
        net, meta = load_teacher(path)
        if net.spec.to_json() != spec.to_json():
            raise DNAError(f"{path}: the saved teacher of generation {gen + 1} has another architecture than this run's",
                           hint="use another work directory, or delete the stale generation directories")
        acc = meta.get("accuracy")
        log(f"teacher of generation {gen + 1}: reused {path}")
        return net, acc
    torch.manual_seed(gen)
    net = ChainNet(spec)
    gdir.mkdir(parents=True, exist_ok=True)
    partial = gdir / "teacher.partial.safetensors"
    train_classifier(net, images, labels, config.teacher_steps, config.batch_size, config.teacher_lr, seed=gen,
                     device=device, resolution=resolution, progress=progress, desc=f"teacher {gen + 1}",
                     checkpoint=partial, checkpoint_every=config.distill.checkpoint_every,
                     checkpoint_minutes=config.distill.checkpoint_minutes, identity=spec.to_json())
    acc = accuracy(net, *test, device=device, resolution=resolution) if test is not None else None
    save_teacher(path, net.cpu(), acc)
    partial.unlink(missing_ok=True)
    log(f"teacher of generation {gen + 1}: {sum(p.numel() for p in net.parameters()):,} params"
        + (f", test accuracy {acc:.1%}" if acc is not None else ""))
    return net, acc


def dna_plus(teacher: torch.nn.Module, boundaries: Sequence[str], space_spec: SpaceSpec, images: torch.Tensor,
             labels: torch.Tensor, config: PlusConfig, workdir: str | FsPath, device: str = "cpu",
             test: tuple[torch.Tensor, torch.Tensor] | None = None, progress: bool = False,
             log: Callable[[str], None] = print) -> list[Generation]:
    """Run ``config.generations`` generations; returns one record per generation (also written to
    ``workdir/generations.json``). Each generation's files live in ``workdir/genN``."""
    if config.cost not in ("params", "flops"):
        raise DNAError("cost is 'params' or 'flops'")
    if config.generations < 1:
        raise DNAError("need at least one generation")
    workdir = FsPath(workdir)
    records: list[Generation] = []
    current = TeacherBlocks(teacher, boundaries)
    teacher_spec: NetSpec | None = None
    teacher_acc: float | None = None
    resolution: int | None = None
    classes = int(labels.max()) + 1
    for gen in range(1, config.generations + 1):
        gdir = workdir / f"gen{gen}"
        gdir.mkdir(parents=True, exist_ok=True)
        choice, ratings, widths = search_generation(current, space_spec, images, config, gdir, device, resolution,
                                                    progress)
        student = arch_to_spec(space_spec, widths, [r.paths[i] for r, i in zip(ratings, choice.indices)], classes)
        records.append(Generation(gen, teacher_spec, teacher_acc, choice, student, ratings))
        log(f"generation {gen}: score {choice.score:.4f}, {config.cost} {choice.cost:,}, "
            f"layers per block {[len(b.ops) for b in student.blocks]}")
        if gen == config.generations:
            break
        # Eq. 9: the scaled student, retrained from scratch, is the next teacher
        teacher_spec = scale_spec(student, config.depth, config.width)
        resolution = round(config.base_resolution * config.resolution)
        net, teacher_acc = next_teacher(teacher_spec, images, labels, config, gen, workdir / f"gen{gen + 1}",
                                        device, resolution, test, progress, log)
        current = TeacherBlocks(net.cpu(), net.boundaries)
    from nasir.io import atomic_write_text

    atomic_write_text(workdir / "generations.json", json.dumps([r.to_json() for r in records], indent=1) + "\n")
    return records
