"""Page weight: bytes of each page and email, and the requests a browser makes per page.

Pages come from the browser tests' tour (tests/browser/tour.py): requests in every state,
served by a real werkzeug server and opened in Debian's Chromium.
"""

from __future__ import annotations

import logging
from datetime import date

from bench.harness import Row, quiet_logs, tracker_app
from bench.request_cost import SUBMITTED_AT

SECTION = "page weight"
LOCAL_ONLY = {"outbox", "outbox-message"}  # the sandbox's pages, never on Lambda
LANGUAGES = ("en", "zh", "az", "ru")


class _Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def _pages(endpoint: str) -> list[Row]:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer
    from tests.browser.tour import local_app, set_the_scene
    from tracker.local import sent_emails

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    clock = _Clock(SUBMITTED_AT)
    server = LiveServer(local_app(endpoint, clock))
    quiet_logs()
    rows = []
    try:
        paths = set_the_scene(server.app, clock, "en", lambda: sent_emails(endpoint))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            requested = []
            page.on("request", lambda request: requested.append(request))
            for name, path in paths.items():
                if name in LOCAL_ONLY:
                    continue
                requested.clear()
                response = page.goto(server.url + path, wait_until="load")
                html = len(response.body())
                # Bytes on the wire, headers included, of the page and all it fetched.
                wire = sum(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]
                           for r in requested if r.response())
                rows.append(Row(SECTION, f"page `{name}` (en), HTML", html, "bytes",
                                note=f"{len(requested)} browser request(s), {wire:,} bytes "
                                     "on the wire with headers",
                                extra={"requests": len(requested), "wire_bytes": wire}))
            browser.close()
    finally:
        server.stop()
    return rows


def _emails(endpoint: str) -> list[Row]:
    """Raw MIME bytes of each email, as SES would receive it, in every language."""
    from tracker import policy
    from tracker.emails import compose
    from tracker.mail import build_mime
    from tracker.model import Request

    app = tracker_app(endpoint)
    rows = []
    kinds = (policy.RECEIPT, policy.CHECK, policy.REMINDER, policy.ESCALATION, policy.RECHECK)
    with app.app_context():
        for kind in kinds:
            sizes = {}
            for lang in LANGUAGES:
                request = Request(
                    id="weighed", email="traveller@example.com", operator="azercell",
                    phone_last4="4567", channel="call", requested_on=date(2026, 9, 14),
                    timezone="Asia/Baku", lang=lang, created_at=SUBMITTED_AT,
                    progress=policy.Progress(next_kind=kind))
                sizes[lang] = len(build_mime(from_address=app.config["MAIL_FROM"],
                                             to_address=request.email,
                                             message=compose(request)))
            heaviest = max(sizes, key=sizes.get)
            rows.append(Row(SECTION, f"email `{kind}` (en), raw MIME", sizes["en"], "bytes",
                            note=f"heaviest language: {heaviest}, {sizes[heaviest]:,} bytes",
                            extra={"by_language": sizes}))
    return rows


def run(smoke: bool, endpoint: str) -> list[Row]:
    return _pages(endpoint) + _emails(endpoint)
