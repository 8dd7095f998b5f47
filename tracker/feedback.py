"""SES feedback: a hard bounce or a complaint suppresses the address and stops its email.

SES publishes bounces and complaints to an SNS topic; SNS hands them to Lambda as
``Records[].Sns.Message``, a JSON string. A transient bounce (mailbox full, greylisting)
changes nothing: SES has retried already, and the next email may well get through.

Everything here is idempotent, so when DynamoDB fails we raise and let Lambda's retry of
the asynchronous SNS invocation deliver the same notification again.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

from tracker import policy
from tracker.store import Store

log = logging.getLogger(__name__)

# A year, renewed by every new bounce or complaint. Forever would keep a pseudonymous
# identifier with no end; a year outlives any mailbox that is merely broken for a while,
# and a complainer who comes back after that has to submit the form again anyway.
SUPPRESSION_TTL = timedelta(days=365)

BOUNCE, COMPLAINT, TRANSIENT, IGNORED = "bounce", "complaint", "transient", "ignored"


@dataclass(frozen=True)
class Feedback:
    """What one SES notification means for us."""

    kind: str  # bounce (permanent), complaint, transient, ignored
    addresses: tuple[str, ...] = ()
    message_id: str | None = None  # SES's id of the email it is about; not personal


def parse(notification: dict) -> Feedback:
    """Read an SES notification (or an SES event-publishing record) into Feedback."""
    kind = notification.get("notificationType") or notification.get("eventType")
    message_id = (notification.get("mail") or {}).get("messageId")
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return Feedback(TRANSIENT, message_id=message_id)
        people = bounce.get("bouncedRecipients") or []
        return Feedback(BOUNCE, _addresses(people), message_id)
    if kind == "Complaint":
        people = (notification.get("complaint") or {}).get("complainedRecipients") or []
        return Feedback(COMPLAINT, _addresses(people), message_id)
    return Feedback(IGNORED, message_id=message_id)  # deliveries, sends, opens …


def _addresses(recipients: list) -> tuple[str, ...]:
    """The bare addresses (a DSN's Final-Recipient may come as ``Name <a@b>``)."""
    found = (r.get("emailAddress") for r in recipients if isinstance(r, dict))
    return tuple(parseaddr(a)[1] or a for a in found if isinstance(a, str) and a.strip())


def apply(store: Store, feedback: Feedback, *, now: datetime) -> Counter:
    """Suppress the feedback's addresses and stop every pending email to them."""
    counts = Counter()
    for address in feedback.addresses:
        addr_key = store.address_key(address)
        store.suppress(addr_key, reason=feedback.kind, now=now, until=now + SUPPRESSION_TTL)
        counts["suppressed"] += 1
        for request_id in store.requests_to(addr_key):
            counts["stopped"] += _stop(store, request_id, feedback.kind, now=now)
    return counts


def _stop(store: Store, request_id: str, reason: str, *, now: datetime) -> bool:
    """Close one request; a job sending it right now loses (its record is conditional)."""
    status = policy.FAILED if reason == BOUNCE else policy.STOPPED
    return store.stop(request_id, status=status, what=f"suppressed:{reason}", now=now)


def handle_sns(store: Store, event: dict, *, now: datetime) -> dict:
    """Apply every SES notification in an SNS event; return counts."""
    counts = Counter(notifications=0, suppressed=0, stopped=0, transient=0, ignored=0)
    for record in (event or {}).get("Records", []):
        counts["notifications"] += 1
        try:
            notification = json.loads(record["Sns"]["Message"])
            if not isinstance(notification, dict):
                raise ValueError("not an object")
            feedback = parse(notification)
        except (KeyError, TypeError, ValueError):
            counts["ignored"] += 1  # not SES's: retrying would not make it readable
            log.warning("unreadable SNS record")
            continue
        if feedback.kind in (TRANSIENT, IGNORED):
            counts[feedback.kind] += 1
            continue
        counts.update(apply(store, feedback, now=now))
        log.info("ses feedback applied",
                 extra={"kind": feedback.kind, "ses_message": feedback.message_id})
    result = dict(counts)
    log.info("ses feedback done", extra={"counts": result})
    return result
