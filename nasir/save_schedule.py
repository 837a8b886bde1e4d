"""When a long run writes its checkpoint: after a number of steps or of minutes, whichever comes first.

A step interval alone is the wrong unit when one step takes seconds on a GPU and minutes on a
loaded CPU: a DARTS supernet at full size saves after 10 steps, more than an hour into a CPU run,
so an interruption loses everything. The time interval bounds the work lost to minutes on any
machine; the step interval keeps saves regular on fast ones. Both count from the last save (or the
start of the run), so a run resumed from a checkpoint saves on the same terms as a fresh one.

Torch-free, so that the command line can show the defaults without importing torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nasir.diagnostics import NasirError

#: Default time interval: the first checkpoint of a run is at most this far away (plus one step).
CHECKPOINT_MINUTES = 2.0


def _now() -> float:
    return time.monotonic()


@dataclass
class SaveSchedule:
    """Decides after each step whether to save: ``every_steps`` steps or ``every_minutes`` minutes
    (0: no time interval) since the last save, whichever comes first."""

    every_steps: int
    every_minutes: float = CHECKPOINT_MINUTES
    last_step: int = 0
    last_time: float = field(default_factory=lambda: _now())  # looked up at each call: tests replace the clock

    def __post_init__(self) -> None:
        if self.every_steps < 1 or not self.every_minutes >= 0:
            raise NasirError(f"checkpoints need an interval of >= 1 steps and >= 0 minutes, got "
                             f"{self.every_steps} and {self.every_minutes}")

    def due(self, step: int) -> bool:
        """Whether the run, now after step ``step``, should save."""
        if step - self.last_step >= self.every_steps:
            return True
        return self.every_minutes > 0 and _now() - self.last_time >= self.every_minutes * 60

    def saved(self, step: int) -> None:
        """Record a save after step ``step``; the next one is due an interval from now."""
        self.last_step, self.last_time = step, _now()
