"""Every page is light (≤ 30 KB before compression) and fetches nothing from elsewhere."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.browser.tour import LANGUAGES, ROOT, local_app, set_the_scene
from tests.helpers import csrf_token

MAX_BYTES = 30_000
# Attributes that make a browser fetch something, or send the traveller's data somewhere.
FETCHING = {"src", "srcset", "href", "action", "formaction", "poster", "data", "background"}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")


class References(HTMLParser):
    """Every address a page makes the browser load or post to; links to read are apart."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.fetched: list[str] = []
        self.links: list[str] = []
        self.scripts: list[str | None] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "style" and value:
                self.fetched += [a or b for a, b in CSS_URL.findall(value)]
            elif name in FETCHING and value:
                # Operators' sites and our sources are links a traveller may follow.
                (self.links if tag == "a" and name == "href" else self.fetched).append(value)
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.fetched += [a or b for a, b in CSS_URL.findall(data)]


def off_site(address: str) -> bool:
    parts = urlsplit(address.strip())
    if parts.scheme == "data":
        return False
    return bool(parts.netloc) or parts.scheme not in ("", "http", "https")


@pytest.fixture
def pages(moto_endpoint, clock, outbox):
    """Fetch every page in ``lang`` with the test client: {name: (status, bytes)}."""

    def fetch(lang: str) -> dict[str, tuple[int, bytes]]:
        app = local_app(moto_endpoint, clock)
        paths = set_the_scene(app, clock, lang, outbox)
        client = app.test_client()
        got = {name: client.get(path) for name, path in paths.items()}
        got["form-with-errors"] = client.post(
            f"/?lang={lang}", data={"csrf_token": csrf_token(client, paths["form"])})
        got["unsubscribed"] = client.post(paths["unsubscribe"])
        return {name: (r.status_code, r.data) for name, r in got.items()}

    return fetch


def test_the_reference_parser_finds_what_a_browser_would_fetch():
    refs = References()
    refs.feed('<link rel="stylesheet" href="https://cdn.example/x.css"><img src="//t.example/p">'
              '<style>@font-face{src:url("https://fonts.example/f.woff2")}</style>'
              '<p style="background:url(https://t.example/b.png)"></p><script src="/s.js"></script>'
              '<a href="https://operator.example/">site</a><form action="https://else.example/">')
    assert [a for a in refs.fetched if off_site(a)] == [
        "https://cdn.example/x.css", "//t.example/p", "https://fonts.example/f.woff2",
        "https://t.example/b.png", "https://else.example/"]
    assert refs.links == ["https://operator.example/"] and refs.scripts == ["/s.js"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_is_at_most_30_kb_and_loads_nothing_from_elsewhere(pages, lang):
    fetched = pages(lang)
    assert {name: status for name, (status, _) in fetched.items()} == {
        "form": 200, "form-with-errors": 400, "confirmation": 200, "check": 200,
        "still-active": 200, "verified": 200, "manage": 200, "unsubscribe": 200,
        "unsubscribed": 200, "deleted": 200, "not-found": 404, "expired": 410, "outbox": 200,
        "outbox-message": 200, "not-sure": 200, "not-asked": 200, "check-early": 200,
        "reseller": 200, "written-request": 200}
    heavy, elsewhere, scripts = {}, {}, {}
    for name, (_, body) in fetched.items():
        if len(body) > MAX_BYTES:
            heavy[name] = len(body)
        refs = References()
        refs.feed(body.decode())
        elsewhere[name] = [a for a in refs.fetched if off_site(a)]
        scripts[name] = set(refs.scripts)
    assert heavy == {}
    assert {name: refs for name, refs in elsewhere.items() if refs} == {}
    # No script is needed; the only one fills the form's time-zone field.
    assert scripts.pop("form") == scripts.pop("form-with-errors") == {"/static/timezone.js"}
    assert {name: s for name, s in scripts.items() if s} == {}
    weights = ROOT / "test-artifacts" / "page-bytes.json"
    weights.parent.mkdir(exist_ok=True)
    known = json.loads(weights.read_text()) if weights.exists() else {}
    known[lang] = {name: len(body) for name, (_, body) in fetched.items()}
    weights.write_text(json.dumps(known, indent=2) + "\n")
