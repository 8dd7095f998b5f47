"""SES bounce and complaint notifications, delivered by SNS (Zappa ``events``)."""

from __future__ import annotations

from datetime import UTC, datetime

from tracker import feedback


def handle(event, context):
    """Suppress hard-bounced and complaining addresses; return counts."""
    from app import app  # the same app Zappa serves, built once per container

    store = app.extensions["tracker"].store
    return feedback.handle_sns(store, event, now=datetime.now(UTC))
