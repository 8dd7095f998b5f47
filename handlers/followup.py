"""The scheduled follow-up job (Zappa ``events``, ``rate(15 minutes)``)."""

from __future__ import annotations

from datetime import UTC, datetime

from tracker import followups, metrics
from tracker.cli import parse_instant


def run(event, context):
    """Send what is due at the event's ``time`` (the real clock without one)."""
    from app import app  # the same app Zappa serves, built once per container

    when = (event or {}).get("time")
    now = parse_instant(when) if when else datetime.now(UTC)
    time_left = getattr(context, "get_remaining_time_in_millis", None)
    with app.app_context():
        result = followups.run(app.extensions["tracker"], now=now, time_left_millis=time_left)
    metrics.emit(metrics.job_values(result))  # a run that raised emits nothing: alarmed
    return result
