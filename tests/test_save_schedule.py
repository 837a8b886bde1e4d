"""When long runs save: after N steps or M minutes, whichever comes first (``nasir.save_schedule``)."""

from __future__ import annotations

import pytest

from nasir import save_schedule
from nasir.diagnostics import NasirError
from nasir.save_schedule import SaveSchedule


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(save_schedule, "_now", fake)
    return fake


def test_steps_or_minutes_whichever_comes_first(clock):
    schedule = SaveSchedule(every_steps=3, every_minutes=2)
    assert not schedule.due(1) and not schedule.due(2)
    assert schedule.due(3)  # three steps, no time at all
    schedule.saved(3)
    clock.now += 119
    assert not schedule.due(4)
    clock.now += 1
    assert schedule.due(4)  # two minutes since the last save, after a single step
    schedule.saved(4)
    assert not schedule.due(5) and schedule.due(7)


def test_a_slow_first_step_is_saved_at_once(clock):
    """A run whose steps take minutes checkpoints after its first step, not after ``every_steps``."""
    schedule = SaveSchedule(every_steps=50)
    clock.now += 60 * save_schedule.CHECKPOINT_MINUTES
    assert schedule.due(1)


def test_zero_minutes_means_steps_only_and_resumed_runs_count_from_their_step(clock):
    schedule = SaveSchedule(every_steps=10, every_minutes=0, last_step=40)
    clock.now += 10**6
    assert not schedule.due(45) and schedule.due(50)


@pytest.mark.parametrize("steps, minutes", [(0, 1.0), (-1, 1.0), (1, -0.5), (1, float("nan"))])
def test_bad_intervals_are_refused(steps, minutes):
    with pytest.raises(NasirError, match="interval"):
        SaveSchedule(every_steps=steps, every_minutes=minutes)
