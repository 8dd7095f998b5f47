"""Measured processing times: what to count per answer, and the figures the counts give.

Pure: no Flask, no boto3, no clock. The counters live in one item per operator, channel
and month (the month the operator was asked), and hold no personal data: only how
answers were given, with what evidence, and after how many working days.

What counts (the threat model is in the README, "Measured processing times"):
- only answers given through a link that was emailed to the traveller (the check
  page's link on the confirmation page proves no mailbox), ``mailed``;
- of each mailbox (a whole domain, but for the big free providers: limits.stats_identity)
  at most one request per operator and month, the first to answer from its email;
- a request's first answer, each ``cancelled`` answer's evidence, and, as a confirmed
  termination timed in working days, only a ``cancelled`` answer whose evidence proves
  it (policy.proves_termination: the operator's written confirmation).
Each figure is shown only from ``min_requests`` answers of its own, shares rounded to
tens of percent, days whole. The first check follows the measured 80th percentile only
*later* than the operator file's processing days, and never past MAX_CHECK_DAYS.

The days are counted from the day the traveller asked to the day they answered, so they
measure when travellers *confirmed* the line dead, not when the operator closed it.
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
MAX_CHECK_DAYS = 5  # the latest a measured first check may come, in working days
SHARE_STEP = 0.1  # shares are shown rounded to tens of percent


def first(kind: str) -> str:
    """A request's first answer, by kind."""
    return f"f_{kind}"


def evidence(kind: str) -> str:
    """What a "cancelled" answer rested on (one answer may give several)."""
    return f"e_{kind}"


CANCELLED = "e_n"  # "cancelled" answers, the evidence shares' denominator


def days_confirmed(days: int) -> str:
    """A proven termination, by working days from asking to the answer."""
    return f"t_days_{min(days, MAX_DAYS)}"


@dataclass(frozen=True)
class Counts:
    """Increments for one counter item, named by operator, channel and month.

    ``claim``: the request's first counted answer, which takes its mailbox's one place
    for this operator and month (the store writes that item, or counts nothing).
    """

    operator: str
    channel: str
    month: str  # YYYY-MM of the day the operator was asked
    add: Mapping[str, int]
    claim: bool = False


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


def on_answer(operator: str, channel: str, requested_on: date, reply: str, *,
              earlier: Iterable[str] = (), evidence_given: Iterable[str] = (),
              now: datetime) -> Counts | None:
    """What one counted answer adds; ``earlier`` are the request's previous answers."""
    if not is_timed(operator, channel) or reply not in ANSWER_KINDS:
        return None
    add = Counter()
    if not list(earlier):
        add[first(reply)] += 1
    if reply == "cancelled":
        given = sorted({e for e in evidence_given if e in (*EVIDENCE, "unknown")})
        add[CANCELLED] += 1
        for kind in given or ["none"]:
            add[evidence(kind)] += 1
        if policy.proves_termination(given):
            days = policy.working_days_between(requested_on,
                                               now.astimezone(policy.BAKU).date())
            add[days_confirmed(days)] += 1
    if not add:
        return None
    return Counts(operator, channel, month_of(requested_on), dict(add))


def answer_counts(request, reply: str, *, evidence: Iterable[str] = (), now: datetime,
                  mailed: bool) -> Counts | None:
    """What a traveller's answer to a stored request (a model.Request) adds.

    Nothing unless it came through an emailed link, from a request that holds (or now
    takes) its mailbox's place. A request from before the counters (not ``counted``)
    adds nothing here: the backfill counts it whole, this answer included.
    """
    if not (mailed and request.counted) or request.voice is False:
        return None
    earlier = [e.what.split(":")[1] for e in request.history if e.what.startswith("answer:")]
    found = on_answer(request.operator, request.channel, request.requested_on, reply,
                      earlier=earlier, evidence_given=evidence, now=now)
    if found is None:
        return None
    return Counts(found.operator, found.channel, found.month, found.add,
                  claim=request.voice is None)


def replay(operator: str, channel: str, requested_on: date,
           answered: Iterable[tuple[str, datetime, tuple[str, ...]]]) -> Counts | None:
    """Everything one request stored before the counters adds, from its answers (kind,
    when, evidence): the backfill. Those answers came from emailed links (the
    confirmation page linked no check page then); it claims the mailbox's place.

    ``cancelled`` answers recorded with no evidence count as ``unknown``, which is no
    proof: they time nothing.
    """
    if not is_timed(operator, channel):
        return None
    total, earlier = Counter(), []
    for reply, at, given in answered:
        one = on_answer(operator, channel, requested_on, reply, earlier=earlier,
                        evidence_given=given or ("unknown",), now=at)
        if one is not None:
            total.update(one.add)
        earlier.append(reply)
    if not total:
        return None
    return Counts(operator, channel, month_of(requested_on), dict(total), claim=True)


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


def coarse(share: float) -> float:
    """A share rounded to the nearest SHARE_STEP (half up), so one answer rarely shows."""
    steps = math.floor(round(share / SHARE_STEP, 9) + 0.5)  # 0.05 is 0.4999… in floats
    return round(steps * SHARE_STEP, 10)


@dataclass(frozen=True)
class Summary:
    """The figures for one cell (an operator and channel), or an operator's total.

    Each figure has its own answers and is shown only from ``min_requests`` of them:
    the timing from proven terminations, the still-active share from first answers,
    the evidence shares from "cancelled" answers.
    """

    operator: str
    channel: str | None  # None: all channels of the operator
    confirmed_days: Mapping[int, int]  # working days to a proven termination -> answers
    first_answers: Mapping[str, int]
    evidence: Mapping[str, int]
    cancelled_answers: int
    min_requests: int

    @property
    def answered(self) -> int:
        """Counted requests that answered (their first answers)."""
        return sum(self.first_answers.values())

    @property
    def enough(self) -> bool:
        """Anything to show at all: enough answers for at least one figure."""
        return self.timed or self.answered >= self.min_requests or (
            self.cancelled_answers >= self.min_requests)

    @property
    def confirmed(self) -> int:
        return sum(self.confirmed_days.values())

    @property
    def timed(self) -> bool:
        """Enough proven terminations to time them."""
        return self.confirmed >= self.min_requests

    @property
    def median(self) -> int | None:
        return percentile(self.confirmed_days, 0.5) if self.timed else None

    @property
    def p80(self) -> int | None:
        return percentile(self.confirmed_days, 0.8) if self.timed else None

    @property
    def still_active_share(self) -> float | None:
        """Of the counted requests answered, the share whose first answer was "still
        active" (rounded); None below the threshold."""
        if self.answered < self.min_requests:
            return None
        return coarse(self.first_answers.get("still_active", 0) / self.answered)

    @property
    def evidence_shares(self) -> dict[str, float]:
        """Of the cancelled answers, the share that had each kind of evidence (rounded).

        One answer can carry several kinds, so the shares may add up to more than 1.
        """
        if self.cancelled_answers < self.min_requests:
            return {}
        return {k: coarse(self.evidence[k] / self.cancelled_answers)
                for k in (*EVIDENCE, "none", "unknown") if self.evidence.get(k)}

    @property
    def histogram(self) -> list[int]:
        """Proven terminations per working day 0..MAX_DAYS (the last: that many or more)."""
        return [self.confirmed_days.get(d, 0) for d in range(MAX_DAYS + 1)]

    def as_dict(self) -> dict:
        """The figures a maintainer's tools read (``stats --json``), small ones blank."""
        return {
            "operator": self.operator, "channel": self.channel,
            "enough_data": self.enough,
            "answered": self.answered if self.answered >= self.min_requests else None,
            "confirmed_terminations": self.confirmed if self.timed else None,
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
    return Summary(
        operator=operator, channel=channel,
        confirmed_days={int(k.rsplit("_", 1)[1]): v for k, v in total.items()
                        if k.startswith("t_days_") and v},
        first_answers={k: total[first(k)] for k in ANSWER_KINDS if total[first(k)]},
        evidence={k.removeprefix("e_"): v for k, v in total.items()
                  if k.startswith("e_") and k != CANCELLED and v},
        cancelled_answers=total[CANCELLED], min_requests=min_requests)


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


def first_check_days(measured: Summary | None, floor: int) -> int:
    """Working days before the first check: the operator's own (``floor``), moved later
    to the measured 80th percentile when there is enough data, never past
    MAX_CHECK_DAYS, never earlier than ``floor``: no amount of data, true or planted,
    brings an honest traveller's check forward or delays it by more than
    ``MAX_CHECK_DAYS - floor``."""
    if measured is None or measured.p80 is None:
        return floor
    return max(floor, min(measured.p80, MAX_CHECK_DAYS))


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
