"""A traveller at the form, over HTTP: GET it, POST it back with its cookie and token."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from deploy.smoke.platform import SmokeFailed

# SES's mailbox simulator: accepted in the sandbox, counted against no reputation
# (aws.amazon.com/blogs/aws/mailbox-simulator-for-the-amazon-simple-email-service/).
SUCCESS = "success@simulator.amazonses.com"
BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"


class _HiddenFields(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 303 itself is the answer to check


def daytime_zone(now: datetime) -> str:
    """An IANA zone where it is early afternoon now, so the first check may go out at once
    (emails wait for the traveller's 09:00–20:00, CONTRACT.md)."""
    offset = (13 - now.astimezone(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}"  # the Etc zones' signs are POSIX's: GMT-4 is UTC+4


def submit(base_url: str, address: str, *, now: datetime) -> None:
    """Submit the form for ``address``; the app must answer 303 (stored, receipt sent)."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    page = f"{base_url.rstrip('/')}/?lang=en"
    with browser.open(page, timeout=30) as answer:
        parser = _HiddenFields()
        parser.feed(answer.read().decode())
    if "csrf_token" not in parser.fields:
        raise SmokeFailed(f"GET {page}: no csrf_token in the form")
    fields = {**parser.fields, "email": address, "operator": "azercell",
              "phone": "+994 50 123 45 67", "channel": "call", "consent": "y",
              # Asked three weeks ago: the processing window has passed even across Novruz.
              "requested_on": (now.date() - timedelta(days=21)).isoformat(),
              "timezone": daytime_zone(now)}
    request = urllib.request.Request(page, data=urllib.parse.urlencode(fields).encode())
    try:
        with browser.open(request, timeout=30) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != 303:
        raise SmokeFailed(f"POST {page} for {address} answered {status}, not 303")
