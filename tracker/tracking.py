"""What a traveller can do to a request: submit it, answer, stop emails, delete it."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from tracker import metrics, policy, stats
from tracker.followups import ANY_HOUR, Postman, deliver
from tracker.limits import Quota
from tracker.mail import CannotSendNow, MailError, Message, PausedError
from tracker.model import Request
from tracker.store import OverLimit, StoreError, Suppressed

log = logging.getLogger(__name__)


def request_id_for(secret: str, submission_id: str) -> str:
    """Derive the request id from the form's submission id, so re-posts collide.

    Keyed, so nobody can pick or predict another traveller's id.
    """
    digest = hmac.new(secret.encode(), submission_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def submit(postman: Postman, request: Request, *, now: datetime,
           quotas: Sequence[Quota] = (),
           time_left_millis: Callable[[], float] | None = None) -> bool:
    """Store the request and send its receipt; False when it was stored before.

    Raises store.OverLimit or store.Suppressed, storing nothing. Two DynamoDB calls in
    all: the create transaction (which also checks suppression) and the receipt's record.
    """
    if request.progress.due_at is None:
        # The receipt is due at once: in the due index from the start, so the job
        # sends it if this request cannot (SES down, Lambda killed).
        request = dataclasses.replace(
            request, progress=dataclasses.replace(request.progress, due_at=now))
    owner, lease_now = uuid.uuid4().hex, postman.clock()
    if not postman.store.create(request, now=now, lease_owner=owner, lease_now=lease_now,
                                quotas=quotas):
        return False
    log.info("request created", extra={"request": request.id, "operator": request.operator})
    # Born claimed: the lease the create wrote, which bounds retrying its record.
    request = dataclasses.replace(request, lease_until=lease_now + postman.store.lease)
    send_at_once(postman, request, owner=owner, now=now,
                 suppression_checked=postman.store.address_key is not None,
                 time_left_millis=time_left_millis)
    return True


def send_at_once(postman: Postman, request: Request, *, owner: str, now: datetime,
                 suppression_checked: bool = False,
                 time_left_millis: Callable[[], float] | None = None) -> str:
    """Send a claimed email while the traveller waits (the receipt, an escalation).

    ``time_left_millis``: the invocation's remaining time (Lambda's context), which also
    bounds retrying the email's record; without it the lease does.

    Whatever SES or DynamoDB answers, what the traveller did is kept: an email that
    cannot go now stays due and the job sends it. Refusals of the sender or the account,
    and emails failed for good, are counted as metrics (alarmed: deploy/operations.yaml).
    """
    try:
        outcome = deliver(postman, request, owner=owner, now=now,
                          suppression_checked=suppression_checked,
                          time_left_millis=time_left_millis)
    except (CannotSendNow, StoreError) as exc:
        # Still due (handed back, or our lease runs out): the next job run sends it.
        log.warning("email left to the job: %s", type(exc).__name__,
                    extra={"request": request.id, "email": request.progress.next_key})
        outcome = "paused" if isinstance(exc, PausedError) else "left"
    metrics.emit({metrics.WEB_MAIL_PAUSED: float(outcome == "paused"),
                  metrics.WEB_MAIL_FAILED: float(outcome == "failed")})
    return outcome


def answer_entry(reply: str, evidence: Sequence[str] = ()) -> str:
    """The timeline entry of an answer: ``answer:cancelled:bill+written``."""
    return f"answer:{reply}" + (f":{'+'.join(evidence)}" if evidence else "")


def repeats_last_answer(request: Request, reply: str, evidence: Sequence[str] = ()) -> bool:
    """Tell whether ``reply`` is the answer already given to the question now asked.

    Every email asks the question (again) but those sent at once in reply to the
    traveller (``followups.ANY_HOUR``: the receipt, the escalation), so whatever the
    answers and email kinds, the same answer stays "the same" until the next one is out.
    A "cancelled" answer with other evidence (the written confirmation has come since an
    unproven one) is a new answer.
    """
    for event in reversed(request.history):
        kind, _, detail = event.what.partition(":")
        if kind == "answer":
            return event.what == answer_entry(reply, evidence)
        if kind == "sent" and detail.split("-")[0] not in ANY_HOUR:
            return False  # asked again since the last answer
    return False


def answer(postman: Postman, request: Request, reply: str, *, now: datetime,
           evidence: Sequence[str] = (), proof_asked: bool = True,
           mailed: bool = False,
           time_left_millis: Callable[[], float] | None = None) -> bool:
    """Record the traveller's answer; a line still active gets its escalation at once.

    ``evidence`` (policy.EVIDENCE values) says what a "cancelled" answer rests on; it is
    kept on the request and in the timeline entry (``answer:cancelled:bill+written``).
    Without proof (policy.proves_termination) the answer asks again, like "not_sure",
    when the traveller was asked for proof (``proof_asked``, see policy.after_answer).
    The same answer to the same question (a double tap, a re-sent form) is recorded once
    and sends nothing more: False then. Raises Conflict when the request changed since
    it was read; read it again and call again. Raises TooEarly, recording nothing, for
    "still_active" or "not_sure" before the first check email (policy.answers_taken).
    """
    if reply not in policy.answers_taken(request.progress, [e.what for e in request.history]):
        raise TooEarly(reply)
    evidence = sorted(set(evidence) & set(policy.EVIDENCE)) if reply == "cancelled" else []
    if repeats_last_answer(request, reply, evidence):
        log.info("repeated answer ignored", extra={"request": request.id})
        return False
    progress = policy.after_answer(request.progress, reply, now=now,
                                   rules=postman.rules_for(request.operator),
                                   tz=ZoneInfo(request.timezone), evidence=evidence,
                                   proof_asked=proof_asked)
    what = answer_entry(reply, evidence)
    # Counted only through a link that reached the mailbox (``mailed``): see tracker.stats.
    counts = stats.answer_counts(request, reply, evidence=evidence, now=now, mailed=mailed)
    if not postman.store.save(request, progress, what=what, now=now,
                              extra={"evidence": evidence} if evidence else None,
                              counts=counts):
        raise Conflict()
    if progress.next_kind == policy.ESCALATION:
        owner = uuid.uuid4().hex
        try:
            claimed = postman.store.claim(request.id, progress.next_key, owner=owner,
                                          now=now, lease_now=postman.clock())
            if claimed:
                send_at_once(postman, claimed, owner=owner, now=now,
                             time_left_millis=time_left_millis)
        except StoreError as exc:
            # The answer is recorded and the escalation due: the job sends it. No error
            # page now: pressing again would only repeat the answer.
            log.warning("escalation left to the job: %s", type(exc).__name__,
                        extra={"request": request.id})
    return True


def asked(postman: Postman, request: Request, *, now: datetime) -> None:
    """A not_yet traveller has now asked the operator: start the check timer from today."""
    asked_on = now.astimezone(policy.BAKU).date()
    progress = policy.after_asked(request.progress, now=now, asked_on=asked_on,
                                  rules=postman.rules_for(request.operator),
                                  tz=ZoneInfo(request.timezone))
    if not postman.store.save(request, progress, what="asked", now=now,
                              extra={"requested_on": asked_on.isoformat()}):
        raise Conflict()


def stop_emails(postman: Postman, request: Request, *, now: datetime, why: str) -> bool:
    """End all further email for this request; True if it was still sending.

    Wins any race with a job or another page (see Store.stop): never a Conflict.
    """
    if request.progress.closed:
        return False
    return postman.store.stop(request.id, status=policy.STOPPED, what=why, now=now)


def send_fresh_links(postman: Postman, request_id: str, *,
                     quotas: Callable[[Request], Sequence[Quota]],
                     compose: Callable[[Request], Message]) -> str:
    """Email new links to the address stored on the request, never to any other.

    Only while the request can still be answered: a request unsubscribed, stopped,
    failed or closed gets no more mail of any kind. ``quotas`` gives the limits to
    count for the request found (per request and per mailbox).

    Returns the outcome for the log; the traveller sees the same page whatever it is, so
    an expired link tells nobody whether the request exists or the email went out.
    """
    try:
        found = postman.store.get(request_id)
        if found is None:
            return "unknown"
        if found.progress.status not in policy.ANSWERABLE:
            return f"closed:{found.progress.status}"
        postman.store.spend(quotas(found), address=found.email)
    except OverLimit as exc:
        return f"over_limit:{exc.quota.name}"
    except Suppressed:
        return "suppressed"
    except StoreError:
        return "store_error"
    try:
        postman.mailer.send_email(from_address=postman.mail_from, to_address=found.email,
                                  message=compose(found))
    except MailError as exc:
        return f"mail_error:{type(exc).__name__}"
    return "sent"


class TooEarly(Exception):
    """An answer the request does not take yet: only "cancelled" before the first check."""


class Conflict(Exception):
    """The request changed between reading and writing it; read it again."""
