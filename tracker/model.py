"""The frozen records that cross the layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from tracker.policy import Progress


@dataclass(frozen=True)
class Event:
    """One line of a request's timeline."""

    at: datetime
    what: str  # submitted, sent:check, answer:cancelled, stopped, failed:check …


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
    counted: bool = False  # in the stats counters (new requests are; old ones once backfilled)
