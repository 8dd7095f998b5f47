"""Measured processing times: what to count per answer, and the figures the counts give.

Pure: no Flask, no boto3, no clock. The counters live in one item per operator, channel
and month (the month the operator was asked), and hold no personal data: only how many
requests, how they were answered, with what evidence, and after how many working days.

The days are counted from the day the traveller asked to the day they answered, so they
measure when travellers *confirmed* the line dead, not when the operator closed it: an
answer mostly comes after our first check email, never before the traveller looked.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import operators
from tracker import policy

log = logging.getLogger(__name__)

# Every operator on file is timed (resellers' data-only eSIMs have no operator to process
# anything); `not_yet` is no request yet. Neither has a processing time to count.
TIMED_OPERATORS = tuple(operators.codes())
TIMED_CHANNELS = ("call", "sms", "online", "store")
ANSWER_KINDS = policy.ANSWERS
EVIDENCE = policy.EVIDENCE
MAX_DAYS = 15  # the histograms' last bucket holds this many working days or more
WINDOW_MONTHS = 12  # the page and the scheduling rule read this many months back
MIN_DAYS, MAX_CHECK_DAYS = 1, 5  # bounds of a measured first check, in working days

REQUESTS = "requests"


def answers(kind: str) -> str:
    return f"answers_{kind}"


def first(kind: str) -> str:
    return f"first_{kind}"


def evidence(kind: str) -> str:
    return f"evidence_{kind}"


def days_cancelled(days: int) -> str:
    return f"days_cancelled_{min(days, MAX_DAYS)}"


def days_still_active(days: int) -> str:
    return f"days_still_active_{min(days, MAX_DAYS)}"


@dataclass(frozen=True)
class Counts:
    """Increments for one counter item, named by operator, channel and month."""

    operator: str
    channel: str
    month: str  # YYYY-MM of the day the operator was asked
    add: Mapping[str, int]


@dataclass(frozen=True)
class Row:
    """One counter item as read back: its cell and its counters."""

    operator: str
    channel: str
    month: str
    counts: Mapping[str, int] = field(default_factory=dict)


def is_timed(operator: str, channel: str) -> bool:
    """Tell whether a request of this operator and channel has a processing time."""
    return operator in TIMED_OPERATORS and channel in TIMED_CHANNELS


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def window(now: datetime, months: int = WINDOW_MONTHS) -> list[str]:
    """The last ``months`` months up to this one in Baku, newest first."""
    today = now.astimezone(policy.BAKU).date()
    year, month, out = today.year, today.month, []
    for _ in range(months):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def on_submit(operator: str, channel: str, requested_on: date) -> Counts | None:
    """What a new request adds: one request in its cell."""
    if not is_timed(operator, channel):
        return None
    return Counts(operator, channel, month_of(requested_on), {REQUESTS: 1})


def on_answer(operator: str, channel: str, requested_on: date, reply: str, *,
              earlier: Iterable[str] = (), evidence_given: Iterable[str] = (),
              now: datetime) -> Counts | None:
    """What one answer adds; ``earlier`` are the request's previous answers, oldest first."""
    if not is_timed(operator, channel) or reply not in ANSWER_KINDS:
        return None
    earlier = list(earlier)
    days = policy.working_days_between(requested_on, now.astimezone(policy.BAKU).date())
    add = Counter({answers(reply): 1})
    if not earlier:
        add[first(reply)] += 1
    if reply == "cancelled":
        add[days_cancelled(days)] += 1
        given = sorted({e for e in evidence_given if e in EVIDENCE})
        for kind in given or ["none"]:
            add[evidence(kind)] += 1
    if reply == "still_active" and "still_active" not in earlier:
        add[days_still_active(days)] += 1
    return Counts(operator, channel, month_of(requested_on), dict(add))


def answer_counts(request, reply: str, *, evidence: Iterable[str] = (),
                  now: datetime) -> Counts | None:
    """What a traveller's answer to a stored request (a model.Request) adds.

    A request from before the counters (not ``counted``) adds nothing here: the
    backfill counts it whole, this answer included, from its timeline.
    """
    if not request.counted:
        return None
    earlier = [e.what.split(":")[1] for e in request.history if e.what.startswith("answer:")]
    return on_answer(request.operator, request.channel, request.requested_on, reply,
                     earlier=earlier, evidence_given=evidence, now=now)


def replay(operator: str, channel: str, requested_on: date,
           answered: Iterable[tuple[str, datetime, tuple[str, ...]]]) -> Counts | None:
    """Everything one stored request adds, from its answers (kind, when, evidence): the
    backfill.

    Answers from before evidence was recorded, and ``cancelled`` answers recorded with
    none, count as ``evidence_unknown``.
    """
    counts = on_submit(operator, channel, requested_on)
    if counts is None:
        return None
    total, earlier = Counter(counts.add), []
    for reply, at, given in answered:
        one = on_answer(operator, channel, requested_on, reply, earlier=earlier,
                        evidence_given=given, now=at)
        if one is None:
            continue
        add = Counter(one.add)
        if reply == "cancelled" and not given:  # "none given" cannot be told from "not kept"
            del add[evidence("none")]
            add[evidence("unknown")] += 1
        total.update(add)
        earlier.append(reply)
    return Counts(operator, channel, counts.month, dict(total))


# ── From counters to figures ─────────────────────────────────────────────────────────

def percentile(histogram: Mapping[int, int], share: float) -> int | None:
    """The nearest-rank percentile of a histogram {days: count}; None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(share * total)), 0
    for days in sorted(histogram):
        seen += histogram[days]
        if seen >= rank:
            return days
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Summary:
    """The figures for one cell (an operator and channel), or an operator's total."""

    operator: str
    channel: str | None  # None: all channels of the operator
    requests: int
    cancelled: Mapping[int, int]  # working days to a cancelled answer -> answers
    first_answers: Mapping[str, int]
    evidence: Mapping[str, int]
    min_requests: int

    @property
    def enough(self) -> bool:
        """The small-cell rule: nothing is shown for fewer than ``min_requests``."""
        return self.requests >= self.min_requests

    @property
    def confirmed(self) -> int:
        return sum(self.cancelled.values())

    @property
    def timed(self) -> bool:
        """Enough requests, and enough confirmed terminations to time them."""
        return self.enough and self.confirmed >= self.min_requests

    @property
    def median(self) -> int | None:
        return percentile(self.cancelled, 0.5) if self.timed else None

    @property
    def p80(self) -> int | None:
        return percentile(self.cancelled, 0.8) if self.timed else None

    @property
    def still_active_share(self) -> float | None:
        """Of the requests answered, the share whose first answer was "still active"."""
        answered = sum(self.first_answers.values())
        if not self.enough or not answered:
            return None
        return self.first_answers.get("still_active", 0) / answered

    @property
    def evidence_shares(self) -> dict[str, float]:
        """Of the cancelled answers, the share that had each kind of evidence.

        One answer can carry several kinds, so the shares may add up to more than 1.
        """
        if not self.enough or not self.confirmed:
            return {}
        return {k: self.evidence[k] / self.confirmed
                for k in (*EVIDENCE, "none", "unknown") if self.evidence.get(k)}

    @property
    def histogram(self) -> list[int]:
        """Answers per working day 0..MAX_DAYS (the last bucket: that many or more)."""
        return [self.cancelled.get(d, 0) for d in range(MAX_DAYS + 1)]

    def as_dict(self) -> dict:
        """The figures a maintainer's tools read (``stats --json``), small cells blank."""
        shown = self.enough
        return {
            "operator": self.operator, "channel": self.channel, "requests": self.requests,
            "enough_data": shown,
            "confirmed_cancelled": self.confirmed if shown else None,
            "median_working_days": self.median, "p80_working_days": self.p80,
            "still_active_at_first_check": self.still_active_share,
            "evidence": self.evidence_shares,
            "histogram": self.histogram if self.timed else None,
        }


def _summary(operator: str, channel: str | None, rows: Iterable[Row],
             min_requests: int) -> Summary:
    total = Counter()
    for row in rows:
        total.update({k: int(v) for k, v in row.counts.items()})
    cancelled = {int(k.rsplit("_", 1)[1]): v for k, v in total.items()
                 if k.startswith("days_cancelled_") and v}
    return Summary(
        operator=operator, channel=channel, requests=total[REQUESTS], cancelled=cancelled,
        first_answers={k: total[first(k)] for k in ANSWER_KINDS if total[first(k)]},
        evidence={k.removeprefix("evidence_"): v for k, v in total.items()
                  if k.startswith("evidence_") and v},
        min_requests=min_requests)


def summarise(rows: Iterable[Row], *, min_requests: int) -> list[Summary]:
    """Every operator's total, then its channels, in the usual order."""
    rows = list(rows)
    out = []
    for operator in TIMED_OPERATORS:
        mine = [r for r in rows if r.operator == operator]
        out.append(_summary(operator, None, mine, min_requests))
        for channel in TIMED_CHANNELS:
            out.append(_summary(operator, channel,
                                [r for r in mine if r.channel == channel], min_requests))
    return out


def cell(rows: Iterable[Row], operator: str, channel: str, *,
         min_requests: int) -> Summary:
    """The figures of one operator and channel."""
    return _summary(operator, channel, [r for r in rows if r.operator == operator
                                        and r.channel == channel], min_requests)


def first_check_days(measured: Summary | None, default: int) -> int:
    """Working days before the first check: the measured 80th percentile, bounded, when
    there is enough data; else the configured default."""
    if measured is None or measured.p80 is None:
        return default
    return min(max(measured.p80, MIN_DAYS), MAX_CHECK_DAYS)


class Measurements:
    """The last months' figures, read from the counters at most once per ``ttl`` seconds.

    Every page and every receipt wants them; reading them each time would add a
    DynamoDB call to each submission. ``clock`` is monotonic seconds; ``unavailable``
    are the errors of ``load`` that make ``measured`` answer None rather than fail.
    """

    def __init__(self, load: Callable[[list[str]], list[Row]], *, ttl: float,
                 clock: Callable[[], float], min_requests: int,
                 unavailable: tuple[type[Exception], ...] = ()):
        self.load, self.ttl, self.clock = load, ttl, clock
        self.min_requests, self.unavailable = min_requests, unavailable
        self._cached: tuple[float, tuple[str, ...], list[Row]] | None = None

    def rows(self, now: datetime) -> list[Row]:
        months = tuple(window(now))
        cached = self._cached
        if cached and cached[1] == months and self.clock() - cached[0] < self.ttl:
            return cached[2]
        rows = self.load(list(months))
        self._cached = (self.clock(), months, rows)
        return rows

    def summaries(self, now: datetime) -> list[Summary]:
        return summarise(self.rows(now), min_requests=self.min_requests)

    def measured(self, operator: str, channel: str, now: datetime) -> Summary | None:
        """The timed figures of one operator and channel; None below the threshold, for
        an untimed request, or when the counters cannot be read just now."""
        if not is_timed(operator, channel):
            return None
        try:
            rows = self.rows(now)
        except self.unavailable as exc:
            log.warning("stats unavailable: %s", type(exc).__name__)
            return None
        found = cell(rows, operator, channel, min_requests=self.min_requests)
        return found if found.timed else None
