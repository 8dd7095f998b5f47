"""The follow-up job: due items → claim → send → record.

``deliver`` sends one claimed email and is shared by the job, the form (the receipt)
and the verification page (the escalation email).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tracker import policy
from tracker.mail import Message, PermanentMailError, RetryableMailError, ThrottledError
from tracker.model import Request
from tracker.store import Store

log = logging.getLogger(__name__)

# Sent at once whatever the hour: the traveller has just acted and expects them.
ANY_HOUR = frozenset({policy.RECEIPT, policy.ESCALATION})


@dataclass(frozen=True)
class Postman:
    """Everything the job needs, wired by the app factory."""

    store: Store
    mailer: object  # has send_email(*, from_address, to_address, message) -> str
    compose: Callable[[Request], Message]
    rules_for: Callable[..., policy.Rules]  # (operator, channel=None): see app._postman
    mail_from: str
    send_rate: float = 0.0
    max_attempts: int = 5
    reserve_millis: int = 10_000


def deliver(postman: Postman, request: Request, *, owner: str, now: datetime,
            suppression_checked: bool = False) -> str:
    """Send the claimed request's pending email once and record it; return the outcome.

    ``suppression_checked``: the caller's own write just checked the address (the form's
    transaction does), so this saves the read. Raises ThrottledError after handing the
    email back, so the caller can stop.
    """
    progress, key = request.progress, request.progress.next_key
    tz = ZoneInfo(request.timezone)
    context = {"request": request.id, "email": key}
    reason = None if suppression_checked else postman.store.suppression(request.email)
    if reason:  # a hard bounce or a complaint: never mail this address again
        status = policy.FAILED if reason == "bounce" else policy.STOPPED
        postman.store.record(request, policy.stopped(progress, status), owner=owner,
                             what=f"suppressed:{reason}", now=now)
        log.info("address suppressed; request stopped", extra=context)
        return "suppressed"
    if progress.next_kind not in ANY_HOUR and not policy.is_daytime(now, tz):
        postman.store.release(request, owner=owner, due_at=policy.daytime(now, tz),
                              failed_attempt=False)
        log.info("deferred to daytime", extra=context)
        return "deferred"
    try:
        message = postman.compose(request)
        message_id = postman.mailer.send_email(
            from_address=postman.mail_from, to_address=request.email, message=message)
    except ThrottledError:
        postman.store.release(request, owner=owner, failed_attempt=False)
        log.warning("ses throttled; leaving the rest due", extra=context)
        raise
    except PermanentMailError as exc:
        postman.store.record(request, policy.stopped(progress, policy.FAILED), owner=owner,
                             what=f"failed:{key}", now=now)
        log.error("ses rejected the email for good: %s", exc, extra=context)
        return "failed"
    except (RetryableMailError, Exception) as exc:  # noqa: BLE001 - one item never stops a run
        if request.attempts + 1 >= postman.max_attempts:
            postman.store.record(request, policy.stopped(progress, policy.FAILED),
                                 owner=owner, what=f"failed:{key}", now=now)
            log.error("giving up after %d attempts: %r", request.attempts + 1, exc,
                      extra=context)
            return "failed"
        postman.store.release(request, owner=owner)
        log.warning("send failed, will retry: %r", exc, extra=context)
        return "retry"
    rules = postman.rules_for(request.operator, request.channel)
    after = policy.after_sent(progress, now=now, requested_on=request.requested_on,
                              rules=rules, tz=tz)
    if not postman.store.record(request, after, owner=owner, what=f"sent:{key}", now=now):
        # The traveller answered (or stopped emails) while we sent: their change stands.
        log.warning("request changed while sending", extra=context)
    log.info("sent", extra=dict(context, message_id=message_id))
    return "sent"


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
    """Send what is due at ``now``; return counts. Safe to run twice at once."""
    owner = uuid.uuid4().hex
    counts = Counter(sent=0, failed=0, deferred=0, retry=0, skipped=0, suppressed=0,
                     errors=0)
    paced = dataclasses.replace(
        postman, mailer=_PacedMailer(postman.mailer, _Pacer(postman.send_rate)))
    stopped_early = throttled = False
    for request_id, key in postman.store.due(now):
        if time_left_millis and time_left_millis() < postman.reserve_millis:
            stopped_early = True  # the rest stays due for the next run
            break
        try:
            request = postman.store.claim(request_id, key, owner=owner, now=now)
            if request is None:
                counts["skipped"] += 1  # another run has it, or it moved on
                continue
            counts[deliver(paced, request, owner=owner, now=now)] += 1
        except ThrottledError:
            throttled = True
            break
        except Exception as exc:  # noqa: BLE001 - one item never stops a run
            # DynamoDB failed past botocore's retries: a lease we took expires and a
            # later run tries again. Only the type is logged: messages may echo values.
            counts["errors"] += 1
            log.error("item failed: %s", type(exc).__name__, extra={"request": request_id})
    result = dict(counts, throttled=throttled, stopped_early=stopped_early)
    log.info("followups run done", extra={"counts": result})
    return result
