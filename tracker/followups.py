"""The follow-up job: due items → claim → send → record.

``deliver`` sends one claimed email and is shared by the job, the form (the receipt)
and the verification page (the escalation email).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tracker import aws, policy
from tracker.mail import (
    CannotSendNow,
    Message,
    PausedError,
    PermanentMailError,
    RetryableMailError,
)
from tracker.model import Request
from tracker.store import Store, StoreError, Unreadable

log = logging.getLogger(__name__)

# Sent at once whatever the hour: the traveller has just acted and expects them.
ANY_HOUR = frozenset({policy.RECEIPT, policy.ESCALATION})

# One email that keeps failing is tried again later and later: 15 minutes, doubling,
# at most 6 hours apart, each wait stretched by up to a half at random so that many
# requests failing together do not come back together.
FIRST_BACKOFF, MAX_BACKOFF = timedelta(minutes=15), timedelta(hours=6)


def wall_clock() -> datetime:
    """The real time: the one clock every run, late or not, agrees on (leases use it)."""
    return datetime.now(UTC)


def backoff(attempts: int, jitter: float) -> timedelta:
    """How long to wait after the ``attempts``-th failure in a row; ``jitter`` in [0, 1)."""
    wait = min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
    return wait * (1 + jitter / 2)


@dataclass(frozen=True)
class Postman:
    """Everything the job needs, wired by the app factory."""

    store: Store
    mailer: object  # has send_email(*, from_address, to_address, message) -> str
    compose: Callable[[Request], Message]
    rules_for: Callable[..., policy.Rules]  # (operator, channel=None): see app._postman
    mail_from: str
    send_rate: float = 0.0
    # A failing email is given up only once it has failed for this long and this often.
    max_attempts: int = 5
    give_up_after: timedelta = timedelta(days=3)
    # A run starts no email with less than this left (config.RESERVE_MILLIS).
    reserve_millis: int = aws.job_reserve_millis()
    # Leases are judged by this clock, never the run's event time.
    clock: Callable[[], datetime] = wall_clock
    # The longest one DynamoDB call and one SES send can take (tracker/aws.py), and the
    # clock skew allowed between hosts.
    call_worst: timedelta = timedelta(seconds=aws.DYNAMODB.worst_seconds())
    send_worst: timedelta = timedelta(seconds=aws.SEND.worst_seconds())
    skew: timedelta = timedelta(seconds=10)
    jitter: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep

    @property
    def lease_margin(self) -> timedelta:
        """What a lease must still have for a send: the re-read, the send and the record,
        each at its worst, and the skew; so no other run can take the email over before
        it is recorded."""
        return 2 * self.call_worst + self.send_worst + self.skew

    def time_to_send(self) -> timedelta:
        """What a run must still have to send one email it holds, and record it."""
        return 2 * self.call_worst + self.send_worst + timedelta(seconds=1)


def deliver(postman: Postman, request: Request, *, owner: str, now: datetime,
            suppression_checked: bool = False,
            time_left_millis: Callable[[], float] | None = None) -> str:
    """Send the claimed request's pending email once and record it; return the outcome.

    ``suppression_checked``: the caller's own write just checked the address and holds
    the request's lease (the form's transaction does), so this saves the re-read. Raises
    CannotSendNow after handing the email back, so the caller can stop. Returns
    ``out_of_time`` (the email handed back) when ``time_left_millis`` is too short to
    send and record it.
    """
    progress, key = request.progress, request.progress.next_key
    tz = ZoneInfo(request.timezone)
    context = {"request": request.id, "email": key}
    if progress.next_kind not in ANY_HOUR and not policy.is_daytime(now, tz):
        postman.store.release(request, owner=owner, due_at=policy.daytime(now, tz))
        log.info("deferred to daytime", extra=context)
        return "deferred"
    try:
        message = postman.compose(request)
        # Where the request goes once this email is out, worked out before sending (it may
        # read the stats): once SES has accepted, only the record is left to do.
        rules = postman.rules_for(request.operator, request.channel)
        after = policy.after_sent(progress, now=now, requested_on=request.requested_on,
                                  rules=rules, tz=tz, plan_ends_on=request.plan_ends_on)
    except Exception as exc:  # noqa: BLE001 - one item never stops a run
        return _retry_later(postman, request, exc, owner=owner, now=now)
    if request.lease_until and postman.clock() > request.lease_until - postman.lease_margin:
        # Too late to be sure the lease outlives the send and the record.
        postman.store.release(request, owner=owner)
        log.warning("lease ran out before sending; left due", extra=context)
        return "lease_expired"
    if time_left_millis and time_left_millis() < postman.time_to_send() / timedelta(
            milliseconds=1):
        postman.store.release(request, owner=owner)
        log.warning("no time left to send and record; left due", extra=context)
        return "out_of_time"
    if not suppression_checked:
        # As late as DynamoDB allows: an answer or an unsubscribe since the claim dropped
        # our lease. What remains is the time from this read to SES accepting the email.
        ours, reason = postman.store.confirm(request, owner=owner)
        if not ours:
            postman.store.release(request, owner=owner)  # refused unless still ours
            log.info("request changed since its claim; not sent", extra=context)
            return "changed"
        if reason:  # a hard bounce or a complaint: never mail this address again
            status = policy.FAILED if reason == "bounce" else policy.STOPPED
            postman.store.record(request, policy.stopped(progress, status), owner=owner,
                                 what=f"suppressed:{reason}", now=now)
            log.info("address suppressed; request stopped", extra=context)
            return "suppressed"
    try:
        message_id = postman.mailer.send_email(
            from_address=postman.mail_from, to_address=request.email, message=message)
    except CannotSendNow as exc:
        # Throttled, unreachable, or the sender or account refused: nothing is wrong with
        # this email, so it is handed back untouched (no try counted).
        postman.store.release(request, owner=owner)
        log.warning("ses cannot send now (%s); leaving the rest due", exc, extra=context)
        raise
    except PermanentMailError as exc:
        postman.store.record(request, policy.stopped(progress, policy.FAILED), owner=owner,
                             what=f"failed:{key}", now=now)
        log.error("ses rejected the email for good: %s", exc, extra=context)
        return "failed"
    except (RetryableMailError, Exception) as exc:  # noqa: BLE001 - one item never stops a run
        return _retry_later(postman, request, exc, owner=owner, now=now)
    if not _record_sent(postman, request, after, owner=owner, now=now,
                        time_left_millis=time_left_millis):
        # The traveller answered (or stopped emails) while we sent: their change stands.
        log.warning("request changed while sending", extra=context)
    log.info("sent", extra=dict(context, message_id=message_id))
    return "sent"


def _record_sent(postman: Postman, request: Request, after: policy.Progress, *,
                 owner: str, now: datetime,
                 time_left_millis: Callable[[], float] | None) -> bool:
    """Record an email SES accepted; DynamoDB failing past botocore's attempts with a
    transient error is tried again, after a pause that doubles, while the lease and the
    invocation's time allow the pause and one more call at its worst (an email left
    unrecorded is sent again once its lease lapses). A refusal (the table gone, access
    denied) is raised at once: asking again changes nothing."""
    key, pause = request.progress.next_key, 1.0
    while True:
        try:
            return postman.store.record(request, after, owner=owner, what=f"sent:{key}",
                                        now=now)
        except StoreError as exc:
            if not aws.transient(exc.__cause__):
                raise
            lease_left = (request.lease_until - postman.clock() if request.lease_until
                          else timedelta(0))
            time_left = (timedelta(milliseconds=time_left_millis()) if time_left_millis
                         else lease_left)
            needed = postman.call_worst + postman.skew + timedelta(seconds=pause)
            if min(lease_left, time_left) < needed:
                raise
            log.warning("recording a sent email failed; trying again in %g s", pause,
                        extra={"request": request.id, "email": key})
            postman.sleep(pause)
            pause = min(2 * pause, aws.MAX_BACKOFF)


def _retry_later(postman: Postman, request: Request, exc: Exception, *, owner: str,
                 now: datetime) -> str:
    """Back off this one email, or give it up once it has failed for long enough."""
    context = {"request": request.id, "email": request.progress.next_key}
    attempts = request.attempts + 1
    since = request.failing_since or now
    if attempts >= postman.max_attempts and now - since >= postman.give_up_after:
        postman.store.record(request, policy.stopped(request.progress, policy.FAILED),
                             owner=owner, what=f"failed:{request.progress.next_key}", now=now)
        log.error("giving up after %d attempts over %s: %s", attempts, now - since,
                  type(exc).__name__, extra=context)
        return "failed"
    retry_at = now + backoff(attempts, postman.jitter())
    postman.store.release(request, owner=owner, due_at=retry_at, failed_at=now)
    log.warning("send failed (%s), will retry at %s", type(exc).__name__, retry_at,
                extra=context)
    return "retry"


class _Pacer:
    """Never exceed ``rate`` sends a second (SES's MaxSendRate is a hard limit).

    Slots are 2 % wider than 1/rate: a send leaves its slot a few varying milliseconds
    late, and even so no second may hold more than ``rate`` sends.
    """

    MARGIN = 1.02

    def __init__(self, rate: float):
        self.interval = self.MARGIN / rate if rate > 0 else 0.0
        self.next_slot = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if now < self.next_slot:
            time.sleep(self.next_slot - now)
        self.next_slot = max(self.next_slot, now) + self.interval


class _PacedMailer:
    """The mailer, waiting for its pacer's slot right before each send.

    Pacing the SES call itself, not the start of an item: the suppression read and
    composing before it take a varying time.
    """

    def __init__(self, mailer, pacer: _Pacer):
        self.mailer, self.pacer = mailer, pacer

    def send_email(self, **email) -> str:
        self.pacer.wait()
        return self.mailer.send_email(**email)


def run(postman: Postman, *, now: datetime,
        time_left_millis: Callable[[], float] | None = None) -> dict:
    """Send what is due at ``now``; return counts and flags. Safe to run twice at once.

    ``paused``: SES refused the sender or the account; ``throttled``: SES asked us to
    slow down or could not be reached; either stops the run with everything left due.
    ``stalled``: one of them stopped a run that had email due before it sent any.
    """
    owner = uuid.uuid4().hex
    counts = Counter(sent=0, failed=0, deferred=0, retry=0, skipped=0, suppressed=0,
                     errors=0, quarantined=0, lease_expired=0, changed=0)
    paced = dataclasses.replace(
        postman, mailer=_PacedMailer(postman.mailer, _Pacer(postman.send_rate)))
    stopped_early = throttled = paused = False
    due = iter(postman.store.due(now))
    while True:
        # Checked before the next page of the due index is read: a Query is part of the
        # reserve (aws.JOB_ITEM_CALLS).
        if time_left_millis and time_left_millis() < postman.reserve_millis:
            stopped_early = True  # the rest stays due for the next run
            break
        try:
            request_id, key = next(due)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - the rest stays due for the next run
            counts["errors"] += 1
            log.error("reading the due index failed: %s", type(exc).__name__)
            break
        try:
            if key is None:
                raise Unreadable(request_id)
            request = postman.store.claim(request_id, key, owner=owner, now=now,
                                          lease_now=postman.clock())
            if request is None:
                counts["skipped"] += 1  # another run has it, or it moved on
                continue
            outcome = deliver(paced, request, owner=owner, now=now,
                              time_left_millis=time_left_millis)
            if outcome == "out_of_time":
                stopped_early = True
                break
            counts[outcome] += 1
        except PausedError as exc:
            paused = True
            log.error("ses refuses the sender or the account (%s): nothing is sent until "
                      "it is fixed", exc.reason)
            break
        except CannotSendNow:
            throttled = True
            break
        except Unreadable as exc:
            counts["quarantined"] += _quarantine(postman.store, exc.key, now=now)
        except Exception as exc:  # noqa: BLE001 - one item never stops a run
            # DynamoDB failed past botocore's retries: a lease we took expires and a
            # later run tries again. Only the type is logged: messages may echo values.
            counts["errors"] += 1
            log.error("item failed: %s", type(exc).__name__, extra={"request": request_id})
    stalled = (paused or throttled) and counts["sent"] == 0
    result = dict(counts, throttled=throttled, paused=paused, stalled=stalled,
                  stopped_early=stopped_early)
    log.info("followups run done", extra={"counts": result})
    return result


def _quarantine(store: Store, key: str, *, now: datetime) -> int:
    """Take an item the code cannot read out of the due index; 1 when it was."""
    # Only the key is logged: the item may hold an address.
    log.error("unreadable item taken out of the due index", extra={"key": key})
    try:
        return int(store.quarantine(key, now=now))
    except StoreError:
        log.error("could not quarantine an unreadable item", extra={"key": key})
        return 0
