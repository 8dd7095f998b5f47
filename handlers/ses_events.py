"""SES bounce and complaint notifications, delivered by SNS (Zappa ``events``)."""

from __future__ import annotations

from datetime import UTC, datetime

from tracker import feedback, metrics


def handle(event, context):
    """Suppress hard-bounced and complaining addresses; return counts."""
    from app import app  # the same app Zappa serves, built once per container

    store = app.extensions["tracker"].store
    # Our account is the one this function runs in: arn:aws:lambda:region:ACCOUNT:…
    arn = getattr(context, "invoked_function_arn", None)
    account = arn.split(":")[4] if isinstance(arn, str) and arn.count(":") >= 5 else None
    counts = feedback.handle_sns(store, event, now=datetime.now(UTC),
                                 mail_from=app.config["MAIL_FROM"], account_id=account)
    metrics.emit(metrics.feedback_values(counts))  # dropped records are alarmed
    return counts
