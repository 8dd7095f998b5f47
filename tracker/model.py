"""The frozen records that cross the layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from tracker.policy import Progress


@dataclass(frozen=True)
class Event:
    """One line of a request's timeline."""

    at: datetime
    what: str  # submitted, sent:check, answer:cancelled:bill+written, asked, stopped …


@dataclass(frozen=True)
class Request:
    """A traveller's cancellation request, as stored: no full phone number, ever."""

    id: str
    email: str
    operator: str
    phone_last4: str
    channel: str
    requested_on: date
    timezone: str
    lang: str
    created_at: datetime
    progress: Progress = field(default_factory=Progress)
    history: tuple[Event, ...] = ()
    version: int = 0
    attempts: int = 0
    # Set on a claimed request: until when (wall clock) its pending email is ours.
    lease_until: datetime | None = None
    # When (event time) its pending email first failed to send, while it keeps failing.
    failing_since: datetime | None = None
    # What a "cancelled" answer rests on (policy.EVIDENCE), recorded with the answer.
    evidence: tuple[str, ...] = ()
    # A reseller eSIM's plan end date, for its one reminder to delete the profile.
    plan_ends_on: date | None = None
    counted: bool = False  # in the stats counters (new requests are; old ones once backfilled)
    # Its mailbox's one counted request for its operator and month (stats): True when it
    # took that place, False when another request had, None before its first counted answer.
    voice: bool | None = None
