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
    """Read an SES notification (or an SES event-publishing record) into Feedback.

    Raises ValueError when a part it needs has the wrong shape (a ``bounce`` that is a
    list or a string, recipients that are not a list).
    """
    kind = notification.get("notificationType") or notification.get("eventType")
    message_id = _object(notification.get("mail"), "mail").get("messageId")
    if not isinstance(message_id, str):
        message_id = None
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"), "bounce")
        if bounce.get("bounceType") != "Permanent":
            return Feedback(TRANSIENT, message_id=message_id)
        return Feedback(BOUNCE, _addresses(bounce.get("bouncedRecipients")), message_id)
    if kind == "Complaint":
        complaint = _object(notification.get("complaint"), "complaint")
        return Feedback(COMPLAINT, _addresses(complaint.get("complainedRecipients")),
                        message_id)
    return Feedback(IGNORED, message_id=message_id)  # deliveries, sends, opens …


def _object(value, name: str) -> dict:
    """``value`` if it is a JSON object; {} when absent; ValueError for anything else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not an object")
    return value


def _addresses(recipients) -> tuple[str, ...]:
    """The bare addresses (a DSN's Final-Recipient may come as ``Name <a@b>``)."""
    if recipients is None:
        return ()
    if not isinstance(recipients, list):
        raise ValueError("recipients are not a list")
    found = (r.get("emailAddress") for r in recipients if isinstance(r, dict))
    return tuple(parseaddr(a)[1] or a for a in found if isinstance(a, str) and a.strip())


def is_ours(notification: dict, *, mail_from: str | None,
            account_id: str | None = None) -> bool:
    """Tell whether the notification is about mail we sent: our sender, our account.

    SNS topics can be shared or misconfigured; feedback about someone else's mail must
    not suppress addresses or stop requests here.
    """
    mail = _object(notification.get("mail"), "mail")
    if mail_from is not None:
        source = mail.get("source")
        if not isinstance(source, str):
            return False
        if (parseaddr(source)[1] or source).casefold() != mail_from.casefold():
            return False
    sender_account = mail.get("sendingAccountId")
    return not (account_id and sender_account and str(sender_account) != account_id)


def apply(store: Store, feedback: Feedback, *, now: datetime) -> Counter:
    """Suppress the feedback's addresses and stop every pending email to them."""
    counts = Counter()
    for address in feedback.addresses:
        addr_key, *older = store.address_keys(address)
        store.suppress(addr_key, reason=feedback.kind, now=now, until=now + SUPPRESSION_TTL)
        counts["suppressed"] += 1
        # Requests stored under an older pepper keep its key until re-keyed (deploy.secret).
        for key in (addr_key, *older):
            for request_id in store.requests_to(key):
                counts["stopped"] += _stop(store, request_id, feedback.kind, now=now)
    return counts


def _stop(store: Store, request_id: str, reason: str, *, now: datetime) -> bool:
    """Close one request; a job sending it right now loses (its record is conditional)."""
    status = policy.FAILED if reason == BOUNCE else policy.STOPPED
    return store.stop(request_id, status=status, what=f"suppressed:{reason}", now=now)


def handle_sns(store: Store, event: dict, *, now: datetime, mail_from: str | None = None,
               account_id: str | None = None) -> dict:
    """Apply every SES notification in an SNS event; return counts.

    Every well-formed record is applied; one that cannot be read is logged and dropped,
    and so is one about mail we did not send (``mail_from``, ``account_id`` when known).
    """
    counts = Counter(notifications=0, suppressed=0, stopped=0, transient=0, ignored=0,
                     foreign=0)
    records = event.get("Records") if isinstance(event, dict) else None
    for record in records if isinstance(records, list) else []:
        counts["notifications"] += 1
        try:
            notification = json.loads(record["Sns"]["Message"])
            if not isinstance(notification, dict):
                raise ValueError("not an object")
            feedback = parse(notification)
            ours = is_ours(notification, mail_from=mail_from, account_id=account_id)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            counts["ignored"] += 1  # not SES's: retrying would not make it readable
            log.warning("unreadable SNS record dropped: %s", type(exc).__name__)
            continue
        if feedback.kind in (TRANSIENT, IGNORED):
            counts[feedback.kind] += 1
            continue
        if not ours:
            counts["foreign"] += 1
            log.warning("feedback about mail we did not send ignored",
                        extra={"ses_message": feedback.message_id})
            continue
        counts.update(apply(store, feedback, now=now))
        log.info("ses feedback applied",
                 extra={"kind": feedback.kind, "ses_message": feedback.message_id})
    result = dict(counts)
    log.info("ses feedback done", extra={"counts": result})
    return result
