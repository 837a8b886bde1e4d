"""Many processes, one command: data-parallel training under ``torchrun``.

``torchrun --nproc_per_node N nasir search ...`` (and ``nasir train``, ``nasir dance train``, ``nasir dna train``)
starts N copies of the command; each finds its place in the environment torchrun sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). ``processes(device)`` joins the
process group (NCCL with the process's own GPU, ``cuda:LOCAL_RANK``, when the device is CUDA; gloo
on the CPU) and leaves it when the command ends, also on an error. Without torchrun, or with one
process, it is a single process and nothing here communicates.

The conventions every driver follows, so that N processes compute what one process computes on the
same data:

* ``--batch-size`` is the global batch: every step's batch is the one a single process would draw
  (``nasir.data.loader``, with its augmentation draws), and process r trains on rows
  ``r*B/N .. (r+1)*B/N - 1`` of it (``Processes.rows``). B must be a multiple of N. Unlike
  ``DistributedSampler``, which shuffles per process, the batches therefore do not depend on N, and
  a run resumes with another N from the same step on the same data.
* ``wrap`` puts the module in ``DistributedDataParallel``: gradients are averaged over the processes
  during the backward pass, so the step equals a single-process step on the whole batch (the loss
  is a mean). Architecture parameters that live in the module are DDP parameters and are averaged
  like weights; gradients computed outside a backward pass (``torch.autograd.grad``, the DARTS
  second-order step) go through ``average``.
* BatchNorm: each process normalizes with the statistics of its own rows (DDP's default; running
  statistics are process 0's, broadcast before every forward). A step on N x b images therefore
  equals a single-process step whose BatchNorms see the same N groups of b images, not one group
  of N*b; ``sync_buffers`` makes the running statistics equal before an evaluation.
* Process 0 alone prints, shows progress, writes logs, checkpoints and outputs; the others wait at a
  barrier (``Processes.main_only``), so no process reads a half-written file. A checkpoint holds
  the state of the unwrapped module (no ``module.`` prefixes) and the optimizers' states, which are
  the same in every process, so any number of processes resumes it.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nasir.diagnostics import NasirError

#: The environment ``torchrun`` gives every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one command (one process: rank 0 of 1)."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def rows(self, batch_size: int) -> slice:
        """The rows of every global batch of ``batch_size`` that this process trains on."""
        self.check_batch(batch_size)
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            fits = batch_size // self.world * self.world or self.world
            raise NasirError(f"--batch-size {batch_size} is the global batch and must be a multiple of the "
                             f"{self.world} processes", hint=f"use e.g. --batch-size {fits}")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def main_only(self, work: Callable[[], None]) -> None:
        """Run ``work`` (a write) in process 0; every process continues once it is done."""
        if self.main:
            work()
        self.barrier()

    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace ``tensors`` (the same shapes in every process) by their mean over the processes."""
        if not self.distributed or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def total(self, values: Sequence[float]) -> list[float]:
        """The sum of each of ``values`` over the processes (sharded evaluation)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t)
        return t.tolist()

    def mean(self, values: Sequence[float]) -> list[float]:
        """The mean of each of ``values`` over the processes (what a single process logs)."""
        return [v / self.world for v in self.total(values)]

    def sync_buffers(self, module: nn.Module) -> None:
        """Give every process process 0's buffers (BatchNorm running statistics) before an evaluation."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise NasirError(f"environment variable {name}={os.environ[name]!r} is not a number",
                         hint="start many processes with torchrun --nproc_per_node N nasir ...") from None


@contextmanager
def processes(device: str | torch.device = "cpu") -> Iterator[Processes]:
    """This command's processes (see the module docstring): joins torchrun's process group for the
    duration of the ``with`` block. Under torchrun ``device`` names the kind (``cpu`` or ``cuda``):
    each process takes the GPU of its local rank. Outside process 0 standard output is silenced."""
    device = torch.device(device)
    if not launched_by_torchrun() or _env_int("WORLD_SIZE") == 1:
        yield Processes(device)
        return
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise NasirError(f"process {rank} has local rank {local}, but this machine has "
                             f"{torch.cuda.device_count()} CUDA devices", hint="use --nproc_per_node <= the GPU count")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise NasirError(f"--device {device}: many processes run on cpu (gloo) or cuda (NCCL)")
    stdout = sys.stdout
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- closed below
    try:
        yield Processes(device, rank, world)
    finally:
        if rank != 0:
            sys.stdout.close()
            sys.stdout = stdout
        gc.collect()  # DDP modules left in reference cycles must not outlive their process group
        dist.destroy_process_group()


def wrap(module: nn.Module, processes: Processes, find_unused_parameters: bool = False) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` (``module`` itself in a single process).

    ``find_unused_parameters``: a forward may leave parameters out (a sampled path, closed gates);
    DDP then looks for them after every forward so their gradients are reduced as zeros.
    """
    if not processes.distributed:
        return module
    ids = [processes.device.index] if processes.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
