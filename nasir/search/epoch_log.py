"""The per-epoch log of a search (and of ``nasir train``, whose records say what ``nasir.train.trainer``
lists): JSON lines, and TensorBoard scalars where TensorBoard is installed.

One JSON object per line and epoch (``epoch``, ``step``, ``lr``, ``train_loss``, ``train_acc``,
``valid_loss``, ``valid_acc`` on ``valid_images`` images of the architecture half, ``arch_entropy``,
``time``: seconds since the search began, ``arch``: the architecture derived at the end of the
epoch; ``tau`` for GDAS; ``partial: true`` for a run that ended inside an epoch). The
records live in the search checkpoint, and the file is rewritten whole from them (atomically) after
each epoch, so after a crash and ``--resume`` it holds exactly the epochs of the checkpoint and
then the new ones, never an epoch twice.

TensorBoard: if ``torch.utils.tensorboard`` can be imported (the ``tensorboard`` package is
installed), every numeric entry of a new record is also a scalar ``search/<name>`` (``train/<name>``) at its epoch,
in the folder ``<log without suffix>.tb``; without it nothing is written and nothing is said.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasir.io import atomic_write_text

Record = dict[str, Any]


def default_log_path(checkpoint: str | Path) -> Path:
    """The log beside a checkpoint: ``run.safetensors`` -> ``run.jsonl``."""
    return Path(checkpoint).with_suffix(".jsonl")


class EpochLog:
    """Writes the records of one run to ``path`` (and to TensorBoard when it is available)."""

    def __init__(self, path: str | Path, prefix: str = "search"):
        self.path = Path(path)
        self.prefix = prefix
        self._tensorboard = _summary_writer(self.path.with_suffix(".tb"))

    def write(self, records: Sequence[Record], new: Record | None = None) -> None:
        """Rewrite the file with ``records``; ``new`` (the last of them) also goes to TensorBoard."""
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        if new is not None and self._tensorboard is not None:
            for key, value in new.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                    self._tensorboard.add_scalar(f"{self.prefix}/{key}", value, new["epoch"])
            self._tensorboard.flush()

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _summary_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(folder))
