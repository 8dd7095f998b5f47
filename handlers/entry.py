"""The function's Lambda handler (zappa_settings.json ``lambda_handler``): Zappa's, guarded.

Zappa runs any SNS message whose JSON has a top-level ``command`` key as that function,
before it even looks at the topic (zappa/handler.py, ``get_function_for_aws_event``).
SES never writes one; anyone else able to publish could call any function in the
package. Such records are refused here; everything else goes to Zappa's handler. Direct
invocations (``zappa invoke``) need lambda:InvokeFunction and are left alone.
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
    return zappa_handler.lambda_handler(event, context)


def _runs_a_command(record) -> bool:
    try:
        message = json.loads(record["Sns"]["Message"])
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(message, dict) and bool(message.get("command"))
