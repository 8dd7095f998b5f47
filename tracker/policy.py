"""Pure follow-up rules: working days, when each email is due, what an answer leads to.

Nothing here reads the clock or talks to AWS: every function takes ``now``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

BAKU = ZoneInfo("Asia/Baku")
DAY_START, DAY_END = time(9, 0), time(20, 0)
CLOSED_TTL = timedelta(days=90)
OVERRIDES_FILE = Path(__file__).with_name("workdays.toml")

# Statuses. "open" and "no_answer" still accept an answer; "not_asked" (channel not_yet)
# waits for the traveller to say they have asked; "guided" (a reseller eSIM) has nothing
# to verify; the rest are final.
OPEN, NO_ANSWER, VERIFIED, ESCALATED, STOPPED, FAILED = (
    "open", "no_answer", "verified", "escalated", "stopped", "failed")
NOT_ASKED, GUIDED = "not_asked", "guided"
ANSWERABLE = frozenset({OPEN, NO_ANSWER})
ANSWERS = ("cancelled", "still_active", "not_sure")
EARLY_ANSWERS = ("cancelled",)  # before the first check email (see before_first_check)
# What a "cancelled" answer may rest on, strongest first (the check page's checkboxes).
EVIDENCE = ("written", "call", "phone", "bill")
# Of those, what tells a terminated line from a suspended one: only the operator's written
# confirmation. A call that fails, the phone's "SIM not valid" and no new charges look the
# same for a line that is only suspended or closed for now (issue 18).
PROOF = frozenset({"written"})

# Email kinds, in the order a traveller may meet them. ASK_AGAIN follows a "not_sure"
# answer; NUDGE reminds a not_yet traveller to ask; DELETE_PROFILE is a reseller's one
# reminder on the plan's end date.
RECEIPT, CHECK, REMINDER, ESCALATION, RECHECK = (
    "receipt", "check", "reminder", "escalation", "recheck")
ASK_AGAIN, NUDGE, DELETE_PROFILE = "ask_again", "nudge", "delete_profile"


@dataclass(frozen=True)
class Rules:
    """The follow-up numbers; an operator file may override any of them."""

    processing_days: int = 3
    reminder_gap_days: int = 2
    max_reminders: int = 2
    recheck_gap_days: int = 2
    max_rechecks: int = 3

    def with_overrides(self, overrides: dict[str, int]) -> Rules:
        """Return these rules with an operator's numbers in place."""
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class Progress:
    """Where one request stands: its status and the one email it waits to send."""

    status: str = OPEN
    next_kind: str | None = RECEIPT
    due_at: datetime | None = None
    reminders: int = 0
    rechecks: int = 0
    escalations: int = 0

    @property
    def next_key(self) -> str | None:
        """Name the pending email uniquely within the request, so it is sent once."""
        if self.next_kind is None:
            return None
        if self.next_kind == REMINDER:
            return f"reminder-{self.rechecks}-{self.reminders + 1}"
        if self.next_kind == ESCALATION:
            return f"escalation-{self.escalations}"
        if self.next_kind == RECHECK:
            return f"recheck-{self.rechecks + 1}"
        if self.next_kind == ASK_AGAIN:
            return f"ask_again-{self.rechecks}-{self.reminders}"
        return self.next_kind

    @property
    def closed(self) -> bool:
        return self.next_kind is None


def initial(channel: str, operator: str) -> Progress:
    """Where a new request starts: only a real request to the operator awaits a check."""
    if channel == "not_yet":
        return Progress(status=NOT_ASKED)
    if operator == "reseller":
        return Progress(status=GUIDED)
    return Progress()


@functools.cache
def _overrides() -> tuple[frozenset[date], frozenset[date]]:
    """Read the maintainers' hand-kept days off and moved working days."""
    if not OVERRIDES_FILE.exists():
        return frozenset(), frozenset()
    from operators import read_toml  # parsed by the prebuild in the Lambda package

    data = read_toml(OVERRIDES_FILE)
    return frozenset(data.get("days_off", [])), frozenset(data.get("working_days", []))


@functools.cache
def _public_holidays(year: int) -> frozenset[date]:
    """Azerbaijan's public holidays for a year (imported late: it is heavy)."""
    import holidays

    # The default PUBLIC category only: WORKDAY lists days that are *worked*.
    return frozenset(holidays.country_holidays("AZ", years=year))


def is_working_day(day: date) -> bool:
    """Tell whether Azerbaijani offices work on this day."""
    days_off, working_days = _overrides()
    if day in working_days:
        return True
    if day in days_off:
        return False
    return day.weekday() < 5 and day not in _public_holidays(day.year)


def add_working_days(day: date, count: int) -> date:
    """Return the count-th working day after ``day``."""
    while count > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            count -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """Count the working days after ``start`` up to and including ``end``."""
    days, day = 0, start
    while day < end:
        day += timedelta(days=1)
        days += is_working_day(day)
    return days


def daytime(moment: datetime, tz: ZoneInfo) -> datetime:
    """Return the first instant at or after ``moment`` within 09:00–20:00 in ``tz``."""
    local = moment.astimezone(tz)
    start = datetime.combine(local.date(), DAY_START, tz)
    if local < start:
        return start.astimezone(UTC)
    if local.time() >= DAY_END:
        return datetime.combine(local.date() + timedelta(days=1), DAY_START, tz).astimezone(
            UTC)
    return moment.astimezone(UTC)


def is_daytime(moment: datetime, tz: ZoneInfo) -> bool:
    """Tell whether ``moment`` is a decent hour to email someone in ``tz``."""
    return daytime(moment, tz) == moment.astimezone(UTC)


def first_check_due(requested_on: date, rules: Rules, tz: ZoneInfo) -> datetime:
    """When the check email is due: the processing window fully over, in daytime."""
    last_day = add_working_days(requested_on, rules.processing_days)
    window_over = datetime.combine(last_day + timedelta(days=1), time(0), BAKU)
    return daytime(window_over, tz)


def working_days_later(now: datetime, count: int, tz: ZoneInfo) -> datetime:
    """The same Baku clock time ``count`` working days on, moved into daytime."""
    local = now.astimezone(BAKU)
    later = datetime.combine(add_working_days(local.date(), count), local.time(), BAKU)
    return daytime(later, tz)


def after_sent(progress: Progress, *, now: datetime, requested_on: date, rules: Rules,
               tz: ZoneInfo, plan_ends_on: date | None = None) -> Progress:
    """What the request waits for once its pending email has gone out."""
    kind = progress.next_kind
    if kind == RECEIPT and progress.status == NOT_ASKED:
        # No request yet: remind them to ask on the next working day, then wait for them.
        return dataclasses.replace(progress, next_kind=NUDGE,
                                   due_at=working_days_later(now, 1, tz))
    if kind == RECEIPT and progress.status == GUIDED:
        if plan_ends_on is None:
            return dataclasses.replace(progress, next_kind=None, due_at=None)
        due = max(daytime(datetime.combine(plan_ends_on, time(0), tz), tz), now)
        return dataclasses.replace(progress, next_kind=DELETE_PROFILE, due_at=due)
    if kind in (NUDGE, DELETE_PROFILE):
        return dataclasses.replace(progress, next_kind=None, due_at=None)
    if kind == ASK_AGAIN:
        return _await_answer(progress, now, rules, tz)
    if kind == RECEIPT:
        due = max(first_check_due(requested_on, rules, tz), now)
        return dataclasses.replace(progress, next_kind=CHECK, due_at=due)
    if kind in (CHECK, RECHECK):
        rechecks = progress.rechecks + (kind == RECHECK)
        return _await_answer(dataclasses.replace(progress, rechecks=rechecks, reminders=0),
                             now, rules, tz)
    if kind == REMINDER:
        return _await_answer(dataclasses.replace(progress, reminders=progress.reminders + 1),
                             now, rules, tz)
    if kind == ESCALATION:
        if progress.rechecks >= rules.max_rechecks:
            return dataclasses.replace(progress, status=ESCALATED, next_kind=None, due_at=None)
        due = working_days_later(now, rules.recheck_gap_days, tz)
        return dataclasses.replace(progress, next_kind=RECHECK, due_at=due)
    raise ValueError(f"nothing pending to have been sent: {kind!r}")


def _await_answer(progress: Progress, now: datetime, rules: Rules, tz: ZoneInfo) -> Progress:
    """Schedule the next reminder, or give up quietly once they are used up."""
    if progress.reminders >= rules.max_reminders:
        return dataclasses.replace(progress, status=NO_ANSWER, next_kind=None, due_at=None)
    due = working_days_later(now, rules.reminder_gap_days, tz)
    return dataclasses.replace(progress, status=OPEN, next_kind=REMINDER, due_at=due)


def proves_termination(evidence: Iterable[str]) -> bool:
    """Tell whether the evidence of a "cancelled" answer shows the line terminated."""
    return not PROOF.isdisjoint(evidence)


def before_first_check(progress: Progress, history: Iterable[str]) -> bool:
    """Tell whether the first check email is still to come (``history``: timeline entries).

    Until then the operator may still be processing the request, so a line that still
    works is expected: only "cancelled" (proof already in hand) is taken.
    """
    return (progress.status == OPEN and progress.next_kind in (RECEIPT, CHECK)
            and f"sent:{CHECK}" not in history)


def answers_taken(progress: Progress, history: Iterable[str]) -> tuple[str, ...]:
    """The answers a request takes now: before the first check, only "cancelled"."""
    return EARLY_ANSWERS if before_first_check(progress, history) else ANSWERS


def after_answer(progress: Progress, answer: str, *, now: datetime,
                 rules: Rules = Rules(), tz: ZoneInfo = BAKU,
                 evidence: Iterable[str] = (), proof_asked: bool = True) -> Progress:
    """Apply the traveller's answer; escalation contacts go out at once.

    "not_sure" asks again ``reminder_gap_days`` later; each ask counts as a reminder,
    so a round holds at most ``max_reminders`` of them, whatever their mix. A
    "cancelled" answer whose ``evidence`` does not prove termination (none ticked, or
    only a call, the phone's message or the bill: a suspended line shows them too) is
    not a confirmation: it takes the "not_sure" path, or, before the first check email,
    leaves that email to ask (issue 18). That holds where the traveller was asked for
    proof (``proof_asked``: the check page); a client that never put the question gets
    CONTRACT.md's rule, "cancelled" verifies, and stats.py does not count it as proven.
    """
    if answer not in ANSWERS:
        raise ValueError(f"unknown answer {answer!r}")
    if progress.status not in ANSWERABLE:
        raise ValueError(f"request is {progress.status}, it takes no answer")
    if answer == "cancelled" and (proves_termination(evidence) or not proof_asked):
        return dataclasses.replace(progress, status=VERIFIED, next_kind=None, due_at=None)
    if answer == "cancelled" and progress.status == OPEN and progress.next_kind in (
            RECEIPT, CHECK):
        return progress  # the first check email is still to come, and asks anyway
    if answer in ("cancelled", "not_sure"):
        if progress.reminders >= rules.max_reminders:
            return dataclasses.replace(progress, status=NO_ANSWER, next_kind=None, due_at=None)
        return dataclasses.replace(
            progress, status=OPEN, next_kind=ASK_AGAIN, reminders=progress.reminders + 1,
            due_at=working_days_later(now, rules.reminder_gap_days, tz))
    return dataclasses.replace(progress, status=OPEN, next_kind=ESCALATION, due_at=now,
                               escalations=progress.escalations + 1)


def after_asked(progress: Progress, *, now: datetime, asked_on: date, rules: Rules,
                tz: ZoneInfo) -> Progress:
    """The not_yet traveller says they have asked: only now does the check timer start."""
    if progress.status != NOT_ASKED:
        raise ValueError(f"request is {progress.status}, not waiting to be asked")
    due = max(first_check_due(asked_on, rules, tz), now)
    return dataclasses.replace(progress, status=OPEN, next_kind=CHECK, due_at=due)


def stopped(progress: Progress, status: str = STOPPED) -> Progress:
    """End all further email (unsubscribe, suppression, permanent failure)."""
    return dataclasses.replace(progress, status=status, next_kind=None, due_at=None)


def expires_at(progress: Progress, now: datetime) -> datetime | None:
    """When a closed request is deleted by DynamoDB's TTL; open ones never are."""
    return now + CLOSED_TTL if progress.closed else None
