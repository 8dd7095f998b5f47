"""SEND_RATE: the job uses the rate it is given and never exceeds it in any second.

The job's clock is replaced by a fake one that moves only when the job sleeps or when a
step takes time, so these tests judge the pacing and not the machine.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools

from tests.jobs import NOW, seed_due
from tracker import followups

RATE = 10.0


class FakeTime:
    """Stands in for the ``time`` module in tracker.followups."""

    def __init__(self):
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A mailer that notes the (fake) moment of every send."""

    def __init__(self, clock: FakeTime):
        self.clock, self.sent_at = clock, []

    def send_email(self, **_) -> str:
        self.sent_at.append(self.clock.now)
        return f"id-{len(self.sent_at)}"


def most_in_any_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered))


def paced_run(app, monkeypatch, due: int, compose_seconds) -> list[float]:
    """Run the job over ``due`` requests, composing each in ``compose_seconds`` (fake)."""
    clock = FakeTime()
    monkeypatch.setattr(followups, "time", clock)
    postman = app.extensions["tracker"]
    seed_due(postman.store, due)
    delays = iter(compose_seconds)

    def slow_compose(request):
        clock.sleep(next(delays))  # composing and reading suppression take varying time
        return postman.compose(request)

    recorder = Recorder(clock)
    paced = dataclasses.replace(postman, compose=slow_compose, mailer=recorder,
                                send_rate=RATE)
    with app.app_context():
        assert followups.run(paced, now=NOW)["sent"] == due
    return recorder.sent_at


def test_paced_run_never_sends_more_than_the_rate_in_any_second_when_steps_vary(
        app, monkeypatch):
    # The first email is slow (cold templates), the rest vary by tens of milliseconds.
    sent_at = paced_run(app, monkeypatch, 45,
                        itertools.chain([0.09], itertools.cycle([0.001, 0.04, 0.012, 0.0])))
    assert most_in_any_second(sent_at) <= RATE


def test_paced_run_uses_at_least_nine_tenths_of_the_rate_when_steps_are_quick(
        app, monkeypatch):
    sent_at = paced_run(app, monkeypatch, 30, itertools.repeat(0.005))
    achieved = (len(sent_at) - 1) / (sent_at[-1] - sent_at[0])
    assert 0.9 * RATE <= achieved <= RATE


def test_a_slow_step_is_not_made_up_for_with_a_burst(app, monkeypatch):
    # One email takes 1.5 s to get ready: the pacer must not then send a backlog at once.
    sent_at = paced_run(app, monkeypatch, 30,
                        itertools.chain([0.0] * 10, [1.5], itertools.repeat(0.0)))
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    assert min(gaps) >= 1 / RATE
