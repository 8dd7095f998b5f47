"""The function's Lambda handler (zappa_settings.json ``lambda_handler``): Zappa's, guarded.

Zappa runs any SNS message whose JSON has a top-level ``command`` key as that function,
before it even looks at the topic (zappa/handler.py, ``get_function_for_aws_event``).
SES never writes one; anyone else able to publish could call any function in the
package. Such records are refused here; everything else goes to Zappa's handler. Direct
invocations (``zappa invoke``) need lambda:InvokeFunction and are left alone.

Before any event, the first invocation puts the stage's secrets in the app (read
through AWS's Parameters and Secrets extension, which answers in the INVOKE phase only).
"""

from __future__ import annotations

import json
import logging

import handler as zappa_handler  # the zip's root handler.py (Zappa's), app built on import

log = logging.getLogger("tracker.entry")


def lambda_handler(event, context):
    """Refuse an SNS message that would run a function by name; else hand to Zappa."""
    if isinstance(event, dict) and any(_runs_a_command(r) for r in event.get("Records") or []):
        log.error("refused an SNS message naming a function to run")
        return {"refused": len(event["Records"])}
    _load_secrets()
    return zappa_handler.lambda_handler(event, context)


def _load_secrets() -> None:
    """The stage's secrets into the app, at the first invocation (INVOKE phase only)."""
    # Zappa's singleton: with INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT it exists since init;
    # it sets the stage's variables from zappa_settings.py and imports the app.
    zappa_handler.LambdaHandler()
    from app import app, load_stored_secrets

    load_stored_secrets(app)


def _runs_a_command(record) -> bool:
    try:
        message = json.loads(record["Sns"]["Message"])
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(message, dict) and bool(message.get("command"))
