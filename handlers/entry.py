"""The function's Lambda handler (zappa_settings.json ``lambda_handler``): routes records.

Every event that carries ``Records`` is an SNS delivery (or something the function was
never meant to get). Records of the stage's own feedback topic (``FEEDBACK_TOPIC_ARN``;
the operations stack subscribes the function to it) go to ``handlers.ses_events.handle``;
anything else raises, so Lambda retries it and then puts it in the dead-letter queue,
where the FunctionErrors and DeadLetters alarms show it. Zappa's own handler would
answer success for a record of a topic it does not map (no retry, no record), and would
run any SNS message with a top-level ``command`` key as the function it names
(zappa/handler.py, ``get_function_for_aws_event``): no record reaches it.

Everything else (API Gateway, the schedule rule, ``zappa invoke``, which needs
lambda:InvokeFunction) goes to Zappa's handler.

Before any event, the first invocation puts the stage's secrets in the app (read
through AWS's Parameters and Secrets extension, which answers in the INVOKE phase only):
the feedback handler's suppression keys need the pepper as much as the pages need the key.
"""

from __future__ import annotations

import logging
import os

import handler as zappa_handler  # the zip's root handler.py (Zappa's), app built on import

log = logging.getLogger("tracker.entry")


class UnroutableEvent(Exception):
    """Records this function does not take: an error, so Lambda retries, then DLQs."""


def lambda_handler(event, context):
    """SNS records of our feedback topic to the SES handler; the rest to Zappa."""
    # Zappa's singleton: with INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT it exists since init;
    # it sets the stage's variables (FEEDBACK_TOPIC_ARN, TABLE_NAME…) from
    # zappa_settings.py and imports the app. Then the secrets, at the first invocation.
    zappa_handler.LambdaHandler()
    _load_secrets()
    if isinstance(event, dict) and "Records" in event:
        from handlers import ses_events

        return ses_events.handle(own_feedback(event, os.environ.get("FEEDBACK_TOPIC_ARN")),
                                 context)
    return zappa_handler.lambda_handler(event, context)


def _load_secrets() -> None:
    """The stage's secrets into the app, at the first invocation (INVOKE phase only)."""
    from app import app, load_stored_secrets

    load_stored_secrets(app)


def own_feedback(event: dict, topic: str | None) -> dict:
    """The event, when every record is an SNS message of ``topic``; else raise."""
    records = event["Records"]
    sources = [_topic_of(r) for r in records] if isinstance(records, list) else [None]
    if not topic or not sources or any(source != topic for source in sources):
        # Topic ARNs only: they name no one.
        log.error("unroutable records", extra={"topics": sorted(map(str, set(sources))),
                                               "expected": topic})
        raise UnroutableEvent(f"records from {sorted(map(str, set(sources)))}, not from "
                              f"this stage's feedback topic {topic!r}")
    return event


def _topic_of(record) -> str | None:
    if not isinstance(record, dict) or record.get("EventSource") != "aws:sns":
        return None
    sns = record.get("Sns")
    return sns.get("TopicArn") if isinstance(sns, dict) else None
