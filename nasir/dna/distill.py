"""Block-wise distillation training of the student supernet (DNA Eq. 5-6).

Block k of the student takes the teacher's block k-1 output and learns to reproduce the teacher's
block k output; every step trains each cell of the block on one uniformly sampled path (one op
per layer), as in DNA's Fig. 2. Blocks share nothing, so they train independently: in one process
one after the other, in worker processes (``workers``), or one share per rank under ``torchrun``.

Determinism and resumption: the mini-batch order of epoch e and the paths of step t are drawn from
generators seeded by (seed, block, e) and (seed, block, t), and the learning rate is a pure
function of t. A checkpoint (safetensors: block weights, optimizer state, loss-head weights, JSON
metadata with the loss history) therefore holds everything needed to continue, and a run
interrupted after its last checkpoint and resumed ends bit-for-bit where an uninterrupted run ends
(on the same device), with the same loss history. Checkpoint metadata is validated as data
(``BlockCheckpoint``) and its position checked against the run before anything is loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from nasir.checkpoint import CheckpointMeta, flatten_state, load_checkpoint_as, restore_optimizer, save_checkpoint
from nasir.dna.errors import DNAError
from nasir.dna.losses import SelfSupervisedBlockLoss, block_mse
from nasir.dna.space import Block
from nasir.save_schedule import CHECKPOINT_MINUTES, SaveSchedule

_MIX = 1_000_003
#: ``DistillConfig`` entries a resumed run may change (not stored in checkpoints)
_SAVE_INTERVALS = ("checkpoint_every", "checkpoint_minutes")


@dataclass
class DistillConfig:
    steps: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    #: "mse" (DNA, Eq. 6) or "ssl" (DNA++, Eq. 10 + 11: teacher and student widths may differ)
    loss: str = "mse"
    #: save a checkpoint every this many steps or minutes, whichever comes first (and at the end)
    checkpoint_every: int = 50
    checkpoint_minutes: float = CHECKPOINT_MINUTES
    ssl_dim: int = 64

    def check(self) -> None:
        if self.loss not in ("mse", "ssl"):
            raise DNAError(f"unknown block loss {self.loss!r}; use 'mse' (DNA) or 'ssl' (DNA++)")
        if self.steps < 0 or self.batch_size < 2 or self.checkpoint_every < 1 or not self.lr > 0 \
                or not self.checkpoint_minutes >= 0:
            raise DNAError("need steps >= 0, batch_size >= 2, checkpoint_every >= 1, checkpoint_minutes >= 0 and lr > 0")


class BlockCheckpoint(CheckpointMeta):
    """Metadata of a block checkpoint. ``losses`` (every step's loss so far) is absent in
    checkpoints of older versions; their history then starts at the resumed step."""

    kind: Literal["dna-block"] = "dna-block"
    block: int = Field(ge=0)
    paths: int = Field(ge=1)
    samples: int = Field(ge=1)
    config: DistillConfig
    step: int = Field(ge=0)
    losses: list[float] | None = None
    optimizer: Any = None

    def run_key(self) -> dict[str, Any]:
        """What must equal between a checkpoint and the run that resumes it."""
        config = {k: v for k, v in asdict(self.config).items() if k not in _SAVE_INTERVALS}
        return {"block": self.block, "paths": self.paths, "samples": self.samples, "config": config}


@dataclass
class BlockLog:
    block: int
    step: int = 0
    #: the loss of every step, from the first (restored from the checkpoint on resume)
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    #: the trained DNA++ projection heads (``loss='ssl'``); rating compares embeddings through them
    head: nn.Module | None = None


class Interrupted(Exception):
    """Raised by ``train_block(..., stop_after=n)``: simulates a kill after step n (for tests)."""


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:
        seed = (seed * _MIX + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def batch_indices(n: int, batch_size: int, step: int, seed: int, block: int) -> torch.Tensor:
    """Sample indices of mini-batch ``step``: epochs are fresh permutations, a pure function of step."""
    per_epoch = max(1, n // batch_size)
    epoch, within = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=_generator(seed, block, epoch, 1))
    return perm[within * batch_size:(within + 1) * batch_size]


def step_paths(block: Block, step: int, seed: int, index: int) -> list[tuple[int, ...]]:
    """One uniformly sampled op sequence per cell for training step ``step``."""
    g = _generator(seed, index, step, 2)
    return [cell.sample(g) for cell in block.cells]


def lr_at(config: DistillConfig, step: int) -> float:
    """Cosine decay from ``lr`` to 0 over ``steps`` (a function of the step alone)."""
    return config.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, config.steps)))


def make_loss(config: DistillConfig, teacher_channels: int, student_channels: int) -> nn.Module | None:
    if config.loss == "ssl":
        return SelfSupervisedBlockLoss(teacher_channels, student_channels, dim=config.ssl_dim)
    return None


def _meta(config: DistillConfig, block: Block, index: int, n: int) -> dict:
    return {"kind": "dna-block", "block": index, "paths": block.size, "samples": n,
            "config": {k: v for k, v in asdict(config).items() if k not in _SAVE_INTERVALS}}


def read_block_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], BlockCheckpoint]:
    """Tensors and validated metadata of a block checkpoint (configuration and position checked)."""
    tensors, meta = load_checkpoint_as(path, BlockCheckpoint, "DNA block", DNAError)
    try:
        meta.config.check()
    except DNAError as e:
        raise DNAError(f"{path}: checkpoint configuration is invalid: {e.message}") from None
    if meta.step > meta.config.steps or (meta.losses is not None and len(meta.losses) != meta.step):
        raise DNAError(f"{path}: checkpoint is at step {meta.step} of {meta.config.steps} with "
                       f"{'no' if meta.losses is None else len(meta.losses)} losses")
    return tensors, meta


def save_block(path: str | Path, block: Block, opt: torch.optim.Optimizer | None, loss_mod: nn.Module | None,
               meta: dict) -> None:
    tensors = {f"block.{k}": v for k, v in block.state_dict().items()}
    if loss_mod is not None:
        tensors.update({f"loss.{k}": v for k, v in loss_mod.state_dict().items()})
    meta = dict(meta)
    if opt is not None:
        meta["optimizer"] = flatten_state("opt", opt.state_dict(), tensors)
    save_checkpoint(path, tensors, meta)


def load_block(path: str | Path, block: Block, loss_mod: nn.Module | None = None,
               expect: dict | None = None) -> tuple[BlockCheckpoint, dict[str, torch.Tensor]]:
    """Load block (and loss-head) weights; returns (metadata, all tensors). ``expect`` holds
    entries of ``BlockCheckpoint.run_key`` that must match."""
    tensors, meta = read_block_checkpoint(path)
    have = meta.run_key()
    for key, value in (expect or {}).items():
        if have[key] != value:
            raise DNAError(f"{path}: checkpoint has {key}={have[key]!r}, this run has {value!r}",
                           hint="use another checkpoint directory, or delete the stale checkpoint")
    for prefix, mod in (("block.", block), ("loss.", loss_mod)):
        if mod is not None:
            _load_prefixed(path, tensors, prefix, mod)
    return meta, tensors


def _load_prefixed(path: str | Path, tensors: dict[str, torch.Tensor], prefix: str, mod: nn.Module) -> None:
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        mod.load_state_dict(state)
    except RuntimeError as e:
        raise DNAError(f"{path}: weights do not fit this block ({str(e).splitlines()[0]})") from None


def train_block(block: Block, inputs: torch.Tensor, targets: torch.Tensor, config: DistillConfig, index: int = 0,
                checkpoint: str | Path | None = None, resume: bool = True, device: str | torch.device = "cpu",
                progress: bool = False, stop_after: int | None = None) -> BlockLog:
    """Distill ``block`` on teacher features ``inputs`` (block k-1 output) -> ``targets`` (block k).

    With ``checkpoint`` and ``resume``, an existing checkpoint of the same run continues it (a
    finished one returns at once). Returns the log with the loss of every step, those before a
    resume included.
    """
    config.check()
    n = inputs.shape[0]
    if targets.shape[0] != n:
        raise DNAError(f"block {index}: {n} inputs but {targets.shape[0]} targets")
    if n < config.batch_size:
        raise DNAError(f"block {index}: {n} samples is fewer than one batch of {config.batch_size}")
    block.to(device).train()
    out_channels = _out_channels(block, inputs[:2].to(device))
    loss_mod = make_loss(config, targets.shape[1], out_channels)
    if loss_mod is None and out_channels != targets.shape[1]:
        raise DNAError(f"block {index}: student cells output {out_channels} channels, the teacher block {targets.shape[1]}",
                       hint="use the DNA++ loss (loss='ssl') when teacher and student widths differ")
    if loss_mod is not None:
        loss_mod.to(device).train()
    params = list(block.parameters()) + (list(loss_mod.parameters()) if loss_mod is not None else [])
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    meta = _meta(config, block, index, n)
    log = BlockLog(index)
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        saved, tensors = load_block(checkpoint, block, loss_mod,
                                    expect={k: meta[k] for k in ("block", "paths", "samples", "config")})
        if saved.optimizer is not None:
            restore_optimizer(opt, saved.optimizer, tensors, str(checkpoint), DNAError)
        log.step = log.resumed_from = saved.step
        log.losses = list(saved.losses or [])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=log.step, desc=f"block {index + 1}", position=index, leave=True,
                   dynamic_ncols=True)
    schedule = SaveSchedule(config.checkpoint_every, config.checkpoint_minutes, last_step=log.step)
    try:
        while log.step < config.steps:
            t = log.step
            idx = batch_indices(n, config.batch_size, t, config.seed, index)
            x, y = inputs[idx].to(device), targets[idx].to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(config, t)
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=device)
            for ci, ops in enumerate(step_paths(block, t, config.seed, index)):
                out = block.cells[ci](x, ops)
                loss = loss + (loss_mod(out, y) if loss_mod is not None else block_mse(out, y))
            loss.backward()
            opt.step()
            log.step = t + 1
            log.losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{log.losses[-1]:.4f}")
            if checkpoint is not None and (schedule.due(log.step) or log.step == config.steps):
                save_block(checkpoint, block, opt, loss_mod, {**meta, "step": log.step, "losses": log.losses})
                schedule.saved(log.step)
            if stop_after is not None and log.step >= stop_after and log.step < config.steps:
                raise Interrupted(f"stopped after step {log.step}")
    finally:
        if bar is not None:
            bar.close()
    if checkpoint is not None and log.step == config.steps and not Path(checkpoint).is_file():
        save_block(checkpoint, block, opt, loss_mod, {**meta, "step": log.step, "losses": log.losses})
    block.eval()
    if loss_mod is not None:
        log.head = loss_mod.eval()
    return log


def load_trained_block(path: str | Path, block: Block) -> SelfSupervisedBlockLoss | None:
    """Load a distilled block for rating; returns its DNA++ projection heads (eval mode) when it
    was trained with the self-supervised loss, else None.

    The head's sizes are read from the checkpoint's tensors, so a rating run needs nothing but the
    checkpoint: a DNA++ student is scored in the embedding space it was trained in, not against
    raw teacher features it never saw (whose width may differ from its own).
    """
    meta, tensors = load_block(path, block)
    block.eval()
    if meta.config.loss != "ssl":
        return None
    try:
        t_in = tensors["loss.teacher_proj.mlp.0.weight"]
        s_in = tensors["loss.student_proj.mlp.0.weight"]
        out = tensors["loss.teacher_proj.mlp.3.weight"]
    except KeyError:
        raise DNAError(f"{path}: a DNA++ checkpoint without its projection heads") from None
    head = SelfSupervisedBlockLoss(int(t_in.shape[1]), int(s_in.shape[1]), dim=int(out.shape[0]),
                                   hidden=int(t_in.shape[0]))
    _load_prefixed(path, tensors, "loss.", head)
    return head.eval()


@torch.no_grad()
def _out_channels(block: Block, x: torch.Tensor) -> int:
    was = block.training
    block.eval()
    chans = {int(block.cells[ci](x, next(iter(cell.ops()))).shape[1]) for ci, cell in enumerate(block.cells)}
    block.train(was)
    if len(chans) != 1:
        raise DNAError(f"the cells of a block disagree on their output width: {sorted(chans)}")
    return chans.pop()


# -- many blocks ---------------------------------------------------------------------------------
def block_checkpoint(directory: str | Path, index: int) -> Path:
    return Path(directory) / f"block{index + 1}.safetensors"


def rank_share(n_blocks: int) -> list[int]:
    """Blocks this process trains: all of them, or its share under torchrun (RANK/WORLD_SIZE)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return list(range(rank, n_blocks, world))


def _worker(args: tuple) -> tuple[int, list[float], int]:
    block, inputs, targets, config, index, ckpt, device, threads = args
    torch.set_num_threads(threads)
    log = train_block(block, inputs, targets, config, index, checkpoint=ckpt, device=device)
    return index, log.losses, log.resumed_from


def train_blocks(blocks: Sequence[Block], features: Sequence[torch.Tensor], config: DistillConfig,
                 checkpoint_dir: str | Path | None = None, workers: int = 1, device: str | torch.device = "cpu",
                 progress: bool = False, only: Sequence[int] | None = None) -> list[BlockLog]:
    """Train every block (``features`` = [input, teacher block 1 out, ..., block N out]).

    ``workers > 1`` trains blocks in that many processes (each writes its block's checkpoint,
    which the parent then loads, so ``checkpoint_dir`` is required). Under torchrun each rank
    trains ``rank_share`` unless ``only`` says which blocks to train.
    """
    if len(features) != len(blocks) + 1:
        raise DNAError(f"{len(blocks)} blocks need {len(blocks) + 1} feature tensors, got {len(features)}")
    todo = list(only) if only is not None else rank_share(len(blocks))
    ckpts = {k: block_checkpoint(checkpoint_dir, k) if checkpoint_dir is not None else None for k in todo}
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    logs: list[BlockLog] = []
    if workers <= 1 or len(todo) <= 1:
        for k in todo:
            logs.append(train_block(blocks[k], features[k], features[k + 1], config, k, ckpts[k], device=device,
                                    progress=progress))
        return logs
    if checkpoint_dir is None:
        raise DNAError("parallel block training (workers > 1) needs a checkpoint directory")
    import multiprocessing as mp

    threads = max(1, torch.get_num_threads() // workers)
    jobs = [(blocks[k], features[k], features[k + 1], config, k, ckpts[k], device, threads) for k in todo]
    with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
        results = pool.map(_worker, jobs, chunksize=1)
    for index, losses, resumed in sorted(results):
        head = load_trained_block(ckpts[index], blocks[index])
        logs.append(BlockLog(index, config.steps, losses, resumed, head))
    return logs
