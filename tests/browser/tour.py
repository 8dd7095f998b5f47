"""A tour of every page: the local-mode app, requests in each state, and their addresses.

Shared by the browser tests (which open the pages in Chromium) and tests/test_pages.py
(which fetches them with Flask's test client).
"""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from babel.support import Translations

from tests.helpers import VALID, csrf_token

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "zh", "az", "ru")
# The clock fixture's Monday 14 September 2026: checks fall due on Friday the 18th.
CHECK_DUE = datetime(2026, 9, 18, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai, 10:00 in Baku
ANSWERED = datetime(2026, 9, 18, 6, 30, tzinfo=UTC)


def local_app(moto_endpoint: str, clock, **overrides):
    """A fresh local-mode app (outbox included) on an empty emulated AWS account."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    from app import create_app
    from tracker import aws, cli

    app = create_app({
        "TESTING": True, "LOCAL_MODE": True, "SECRET_KEY": "pages-secret", "SEND_RATE": 0,
        # Links in emails lead to the test client's host; a served app sets its own address.
        "MAIL_FROM": "tracker@example.com", "BASE_URL": "http://localhost",
        "CLOCK": clock, **overrides})
    with app.app_context():
        app.test_cli_runner().invoke(cli.bootstrap, catch_exceptions=False)
        aws.client("ses").verify_email_identity(EmailAddress="tracker@example.com")
    return app


def catalog(lang: str) -> Translations:
    """The compiled catalog the app uses for ``lang`` (the msgid itself where it has none)."""
    return Translations.load(str(ROOT / "translations"), [lang])


def path_of(url: str) -> str:
    """The path and query of an absolute link, for the test client or another host."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def expired_token(app, purpose: str, request_id: str) -> str:
    """A genuine token made long ago, as an old email would hold."""
    from tracker import tokens

    return tokens.make(app.config["SECRET_KEY"], purpose, request_id, now=1_000_000_000)


def _submit(client, lang: str, email: str, **changes) -> str:
    data = dict(VALID, email=email, requested_on="")
    data["csrf_token"] = csrf_token(client, f"/?lang={lang}")
    data.update(changes)
    response = client.post(f"/?lang={lang}", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return response.headers["Location"]


def _answer(client, check_path: str, reply: str, evidence: tuple[str, ...] = ()) -> None:
    token = csrf_token(client, check_path)
    response = client.post(check_path, data={"csrf_token": token, "answer": reply,
                                             "evidence": list(evidence)})
    assert response.status_code == 303


def _is_check(message: dict) -> bool:
    return bool(re.search(r'href="[^"]*/check/', message["html"]))


def link(message: dict, part: str) -> str:
    """The path of the first link in an email's HTML whose path starts with ``/part/``."""
    return path_of(re.search(rf'href="([^"]*/{part}/[^"]*)"', message["html"]).group(1))


def set_the_scene(app, clock, lang: str, sent_emails) -> dict[str, str]:
    """Requests in every state the pages show; return each page's path, in ``lang``.

    open: submitted, check email sent, unanswered (check, manage, unsubscribe pages);
    still: answered "still active"; verified: answered "cancelled"; unsure: "not sure";
    early: submitted, only the receipt sent (the check page offers "cancelled" alone);
    not-asked: channel not_yet; reseller: a reseller eSIM; written-request: the drafting page.
    """
    from tracker import followups, tokens

    client = app.test_client()
    states = ("open", "still", "verified", "unsure")
    addresses = {state: f"{state}-{lang}@example.com" for state in states}
    done = {state: _submit(client, lang, to) for state, to in addresses.items()}
    with app.app_context():
        assert followups.run(app.extensions["tracker"], now=CHECK_DUE)["sent"] == 4
    emails = sent_emails()
    # The last email with a check link: the receipt links the check page too.
    checks = {state: [m for m in emails if m["to"] == to and _is_check(m)][-1]
              for state, to in addresses.items()}
    check_path = {state: link(m, "check") for state, m in checks.items()}
    clock.now = ANSWERED
    _answer(client, check_path["still"], "still_active")
    _answer(client, check_path["verified"], "cancelled", ("written",))
    _answer(client, check_path["unsure"], "not_sure")
    not_asked = _submit(client, lang, f"not-asked-{lang}@example.com", channel="not_yet")
    early_to = f"early-{lang}@example.com"
    _submit(client, lang, early_to)
    receipt = [m for m in sent_emails() if m["to"] == early_to][-1]
    reseller = _submit(client, lang, f"reseller-{lang}@example.com", operator="reseller",
                       phone="", channel="", plan_ends_on="2026-10-02")

    manage = link(checks["open"], "manage")
    open_id = tokens.read(app.config["SECRET_KEY"], "manage", urlsplit(manage).path.split("/")[-1],
                          max_age_seconds=86400)
    return {
        "form": f"/?lang={lang}",
        "confirmation": path_of(done["open"]),
        "check": check_path["open"],
        "still-active": check_path["still"],
        "verified": check_path["verified"],
        "not-sure": check_path["unsure"],
        "check-early": link(receipt, "check"),  # before the first check email
        "not-asked": path_of(not_asked),
        "reseller": path_of(reseller),
        "written-request": f"/write/azercell?lang={lang}",
        "manage": manage,
        "unsubscribe": link(checks["open"], "unsubscribe"),
        "deleted": f"/deleted?lang={lang}",
        "not-found": f"/manage/no-such-link?lang={lang}",
        "expired": f"/manage/{expired_token(app, 'manage', open_id)}?lang={lang}",
        "outbox": f"/outbox?lang={lang}",
        "outbox-message": f"/outbox/{checks['open']['number']}?lang={lang}",
    }
