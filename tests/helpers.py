"""Small helpers shared by the tests."""

from __future__ import annotations

import json
import re

VALID = {
    "email": "traveller@example.com", "operator": "azercell", "phone": "+994 50 123 45 67",
    "channel": "call", "requested_on": "2026-09-14", "timezone": "Asia/Baku", "consent": "y",
}


def csrf_token(client, path: str = "/") -> str:
    """GET a page and return the CSRF token its form carries."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def form_fields(client, path: str = "/") -> dict[str, str]:
    """GET the form and return its hidden CSRF token and server-issued submission id."""
    html = client.get(path).get_data(as_text=True)
    return dict(re.findall(r'name="(csrf_token|submission_id)" type="hidden" value="([^"]*)"',
                           html))


def submit(client, **changes):
    """POST the form with valid values, changed as given (None drops a field)."""
    data = dict(VALID, csrf_token=csrf_token(client))
    data.update(changes)
    return client.post("/", data={k: v for k, v in data.items() if v is not None})


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", text)


def link(message: dict, path_part: str) -> str:
    """The first link in an email whose path holds ``path_part``."""
    return next(u for u in links_in(message["text"]) if path_part in u)


def local_path(url: str, base: str = "https://tracker.example/dev") -> str:
    """Turn an email link into a path for the test client."""
    assert url.startswith(base), url
    return url[len(base):]


def stored_requests(table) -> list[dict]:
    """The request items in the table, leaving out abuse counters and suppressions."""
    return [item for item in table.scan()["Items"] if item["pk"].startswith("REQ#")]


def emf_lines(text: str) -> list[dict]:
    """The Embedded Metric Format lines in captured stdout."""
    return [json.loads(line) for line in text.splitlines()
            if line.startswith("{") and '"_aws"' in line]
