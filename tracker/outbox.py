"""The sandbox's outbox: every email moto's SES accepted, readable with working links.

The app factory registers ``bp`` only in local mode (``LOCAL_MODE=1`` and not on
Lambda). It imports nothing of ``app``, so ``app`` → ``tracker.outbox`` is one way and
``tracker.local`` (the sandbox runner, which imports ``app``) stays out of the app.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import urllib.request

from flask import Blueprint, abort, render_template

bp = Blueprint("local", __name__)
MOTO_PORT = int(os.environ.get("MOTO_PORT", "5001"))


def sent_emails(endpoint: str) -> list[dict]:
    """Every email moto's SES accepted, oldest first, parsed."""
    with urllib.request.urlopen(f"{endpoint.rstrip('/')}/moto-api/data.json", timeout=10) as r:
        data = json.load(r)
    messages = []
    for number, raw in enumerate(data.get("ses", {}).get("RawMessage", [])):
        parsed = email.message_from_string(raw["raw_data"], policy=email.policy.default)
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        messages.append({
            "number": number, "id": raw["id"], "to": parsed["To"], "subject": parsed["Subject"],
            "date": parsed["Date"], "headers": dict(parsed.items()),
            "text": text.get_content() if text else "", "html": html.get_content() if html else ""})
    return messages


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL", f"http://127.0.0.1:{MOTO_PORT}")


@bp.get("/outbox")
def outbox():
    """List every email sent, newest first."""
    return render_template("outbox.html", messages=list(reversed(sent_emails(_endpoint()))))


@bp.get("/outbox/<int:number>")
def outbox_message(number: int):
    """One email as the traveller would see it, links working."""
    messages = sent_emails(_endpoint())
    if not 0 <= number < len(messages):
        abort(404)
    return render_template("outbox_message.html", message=messages[number])
