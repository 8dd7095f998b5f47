"""Hostile input, generated: never a 5xx, never an injected email header, errors in the
traveller's language.

Each property posts arbitrary text (unicode, control characters, CR/LF, 100 KB values,
missing and repeated fields) to every field of one form, or arbitrary paths and methods
to the app. Examples share one app and table per test, so they also meet each other's
leftovers (a deleted request, a used-up limit), as real traffic would.
"""

from __future__ import annotations

import email
import email.policy
import html as htmlib
import json
import re
import urllib.request
from functools import cache
from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.conftest import ROOT
from tests.helpers import VALID, csrf_token, stored_requests, submit
from tracker import i18n, tokens

# Modest counts and no shrinking keep the suite fast; a failure prints its example and a
# blob for @reproduce_failure, which is enough to replay it and shrink by hand.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
FUZZ = settings(max_examples=40, deadline=None, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

ATTACKS = [
    "victim@example.com\r\nBcc: evil@example.net", "victim@example.com\nSubject: hi",
    "a@example.com%0d%0aBcc:evil@example.net", "=?utf-8?q?=0D=0ABcc:_evil@example.net?=",
    "\r\n\r\n<html>", "\x00", "\u2028\u2029", "\ufeff", "' OR 1=1 --", "<script>x</script>",
    "{{ 7*7 }}", "%(operator)s", "../../etc/passwd", "Factory", "posixrules", "America",
    "Etc/GMT-14", "9999-12-31", "0000-00-00", "2026-02-30", "+994 50 123 45 67" * 3,
    "٠٥٠١٢٣٤٥٦٧", "y", "on", "true", "azercell", "still_active", "cancelled", "zh",
    "x" * 100_000, "é" * 33_000, "\r\n" * 20_000, "🙂" * 5_000,
]
nasty = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Zs"]),
            max_size=20),
    st.sampled_from(ATTACKS),
    st.emails().map(lambda a: a + "\r\nBcc: evil@example.net"),
)


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


KEEP, DROP = _Marker("KEEP"), _Marker("DROP")  # the valid value / no field at all
# One field's value: as a valid form has it, missing, hostile, or repeated.
field_value = st.one_of(st.just(KEEP), st.just(DROP), nasty,
                        st.lists(nasty, min_size=2, max_size=3))
# Addresses that are valid but odd: they must reach the outbox as one clean To header.
odd_addresses = st.one_of(
    st.emails(),
    st.sampled_from(["o'brien+tag@example.com", "x@bücher.de", "UPPER@EXAMPLE.COM",
                     "a.b-c_d@sub.example.co.uk", "~!#$%&*=?^{|}@example.org"]))
languages = st.sampled_from(i18n.LANGUAGES)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
                           "TRACE", "PROPFIND", "BREW"])


def _resolve(value, valid):
    if value is KEEP:
        return valid
    return None if value is DROP else value


@cache
def _titles(lang: str) -> list[re.Pattern]:
    """Every text of the catalog the app uses for ``lang``, as a pattern for an <h1>."""
    from babel.support import Translations

    if lang == "en":  # English is the msgids themselves, which any other catalog lists
        catalog = Translations.load(str(ROOT / "translations"), ["zh"])._catalog
        texts = {key for key in catalog if isinstance(key, str) and key}
    else:
        catalog = Translations.load(str(ROOT / "translations"), [lang])._catalog
        texts = {value for key, value in catalog.items() if isinstance(key, str) and value}
    return [re.compile(re.sub(r"%\\\(\w+\\\)s", ".+", re.escape(t)), re.S) for t in texts]


def assert_sound(response, lang: str) -> None:
    """No server error; an error page speaks ``lang`` and its title is that catalog's."""
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code < 400 or response.request.method == "HEAD":
        return
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}"' in page
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    assert heading, page[:300]
    title = htmlib.unescape(re.sub(r"<[^>]+>", "", heading[1])).strip()
    assert any(p.fullmatch(title) for p in _titles(lang)), f"{title!r} is not {lang}"


ALLOWED_HEADERS = {"from", "to", "subject", "date", "mime-version", "content-type",
                   "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post",
                   "message-id"}


def raw_emails(moto_endpoint: str) -> list[str]:
    """Every email moto's SES accepted, as the raw MIME text it was sent as."""
    with urllib.request.urlopen(f"{moto_endpoint}/moto-api/data.json", timeout=10) as r:
        return [m["raw_data"] for m in json.load(r).get("ses", {}).get("RawMessage", [])]


def assert_clean_outbox(moto_endpoint: str, recipients: set[str]) -> int:
    """Every raw email has our headers only, one recipient among ``recipients``, no CR/LF
    smuggled into a value; returns how many were checked."""
    raw = raw_emails(moto_endpoint)
    for text in raw:
        head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
        names = [line.split(":", 1)[0].lower() for line in head.split("\n")
                 if line and not line[0].isspace()]
        assert set(names) <= ALLOWED_HEADERS and len(names) == len(set(names)), head
        parsed = email.message_from_string(text, policy=email.policy.default)
        assert [a.addr_spec for a in parsed["To"].addresses] in ([r] for r in recipients)
        for name, value in parsed.items():
            assert "\r" not in value and "\n" not in value, (name, value)
    return len(raw)


def _post(client, path: str, fields: list[tuple[str, object]]):
    return client.post(path, data=MultiDict(
        [(k, v) for k, value in fields
         for v in (value if isinstance(value, list) else [value]) if v is not None]))


# --- the request form ----------------------------------------------------------------


@FUZZ
@given(lang=languages, email=st.one_of(odd_addresses, field_value),
       others=st.fixed_dictionaries({name: field_value for name in (
           "operator", "phone", "channel", "requested_on", "timezone", "consent",
           "website", "submission_id", "csrf_token", "switch_lang")}))
def test_the_request_form_survives_anything(app, client, moto_endpoint, lang, email, others):
    app.config.update(SUBMISSIONS_PER_IP_PER_HOUR=0, SUBMISSIONS_PER_ADDRESS_PER_DAY=0)
    valid = dict(VALID, csrf_token=csrf_token(client), website="", submission_id=None,
                 switch_lang=None)
    fields = [("email", _resolve(email, VALID["email"]))]
    fields += [(name, _resolve(value, valid[name])) for name, value in others.items()]
    assert_sound(_post(client, f"/?lang={lang}", fields), lang)
    recipients = {item["email"] for item in stored_requests(app_table(app))}
    assert_clean_outbox(moto_endpoint, recipients)


@FUZZ
@given(lang=languages, email=st.one_of(odd_addresses, nasty),
       timezone=st.one_of(st.sampled_from(["Asia/Baku", "Asia/Shanghai", "Factory"]), nasty),
       phone=st.sampled_from(["+994 50 123 45 67", "0501234567", "(055) 123-45-67"]))
def test_accepted_submissions_never_carry_an_injected_header(
        app, client, moto_endpoint, lang, email, timezone, phone):
    """Mostly valid forms, so that emails really go out, with the odd parts fuzzed."""
    app.config.update(SUBMISSIONS_PER_IP_PER_HOUR=0, SUBMISSIONS_PER_ADDRESS_PER_DAY=0)
    before = len(raw_emails(moto_endpoint))
    data = dict(VALID, csrf_token=csrf_token(client), email=email, timezone=timezone,
                phone=phone)
    response = client.post(f"/?lang={lang}", data=data)
    assert_sound(response, lang)
    recipients = {item["email"] for item in stored_requests(app_table(app))}
    after = assert_clean_outbox(moto_endpoint, recipients)
    assert after == before + (response.status_code == 303)
    if response.status_code == 303:
        assert "\r" not in email and "\n" not in email


def app_table(app):
    from tracker import aws

    return aws.table(app.config["TABLE_NAME"])


def test_valid_but_odd_addresses_are_mailed_in_ascii(app, client, outbox, table):
    assert submit(client, email="x@Bücher.de").status_code == 303
    assert submit(client, email="пример@example.com").status_code == 400
    assert [item["email"] for item in stored_requests(table)] == ["x@xn--bcher-kva.de"]
    [receipt] = outbox()
    assert receipt["to"] == "x@xn--bcher-kva.de"


# --- the forms of pages about a request ----------------------------------------------


@pytest.fixture
def request_links(app, client, table):
    """One stored request, and the tokens of its pages."""
    submit(client)
    [item] = stored_requests(table)
    secret = app.config["SECRET_KEY"]
    return {purpose: tokens.make(secret, purpose, item["id"])
            for purpose in ("check", "manage", "unsubscribe")}


def token_for(purpose: str):
    """The request's genuine token for ``purpose`` (looked up per test), or a forged one."""
    return st.one_of(st.just(purpose), st.sampled_from(["check", "manage", "unsubscribe"]),
                     nasty.filter(lambda t: "/" not in t and t not in (".", "..")))


def _token(links: dict, choice: str) -> str:
    return quote(links[choice] if choice in links else choice, safe="")


csrf_choice = st.one_of(st.just(KEEP), st.just(DROP), nasty, st.lists(nasty, min_size=2))
extra_fields = st.lists(st.tuples(st.one_of(st.sampled_from(["answer", "email", "csrf_token",
                                                            "lang", "token", "to"]), nasty),
                                  nasty), max_size=3)


@FUZZ
@given(lang=languages, token=token_for("check"), csrf=csrf_choice,
       answer=st.one_of(st.sampled_from(["cancelled", "still_active"]), field_value),
       extra=extra_fields)
def test_the_check_form_survives_anything(client, request_links, lang, token, csrf, answer,
                                          extra):
    path = f"/check/{_token(request_links, token)}?lang={lang}"
    valid_csrf = csrf_token(client, "/")  # one token per session serves every form
    fields = [("csrf_token", _resolve(csrf, valid_csrf)),
              ("answer", _resolve(answer, "cancelled")), *extra]
    assert_sound(_post(client, path, fields), lang)


@FUZZ
@given(lang=languages, token=token_for("manage"), button=st.sampled_from(["stop", "delete"]),
       csrf=csrf_choice, extra=extra_fields)
def test_the_manage_buttons_survive_anything(client, request_links, lang, token, button,
                                             csrf, extra):
    path = f"/manage/{_token(request_links, token)}/{button}?lang={lang}"
    valid_csrf = csrf_token(client, "/")
    assert_sound(_post(client, path, [("csrf_token", _resolve(csrf, valid_csrf)), *extra]),
                 lang)


@FUZZ
@given(lang=languages, token=token_for("unsubscribe"), extra=extra_fields,
       method=st.sampled_from(["GET", "POST"]))
def test_the_unsubscribe_form_survives_anything(client, request_links, lang, token, extra,
                                                method):
    path = f"/unsubscribe/{_token(request_links, token)}?lang={lang}"
    if method == "GET":
        assert_sound(client.get(path), lang)
    else:
        assert_sound(_post(client, path, extra), lang)


@FUZZ
@given(lang=languages, purpose=st.one_of(st.sampled_from(["check", "manage", "unsubscribe"]),
                                         nasty.filter(lambda t: "/" not in t)),
       token=token_for("expired"), csrf=csrf_choice, extra=extra_fields)
def test_the_fresh_link_form_survives_anything(app, client, moto_endpoint, request_links,
                                               table, lang, purpose, token, csrf, extra):
    [item] = stored_requests(table) or [{"id": "gone"}]
    expired = tokens.make(app.config["SECRET_KEY"], "check", item["id"], now=1_000_000_000)
    links = dict(request_links, expired=expired)
    path = f"/renew/{quote(purpose, safe='')}/{_token(links, token)}?lang={lang}"
    fields = [("csrf_token", _resolve(csrf, csrf_token(client, "/"))), *extra]
    assert_sound(_post(client, path, fields), lang)
    assert_clean_outbox(moto_endpoint, {"traveller@example.com"})


# --- any path, any method ------------------------------------------------------------

segments = st.one_of(st.sampled_from(["", "check", "manage", "unsubscribe", "done", "renew",
                                      "deleted", "renewed", "static", "outbox", "stop",
                                      "delete", "..", ".", "timezone.js", "%00", "%2F"]),
                     nasty.map(lambda t: quote(t[:200], safe="")))


@settings(FUZZ, max_examples=80)
@given(lang=languages, method=methods, parts=st.lists(segments, max_size=5),
       body=st.one_of(st.none(), nasty))
def test_any_path_and_method_gets_an_answer_in_the_chosen_language(client, lang, method,
                                                                    parts, body):
    # PATH_INFO as a WSGI server passes it (decoded, latin-1), so "//" and "%2F" reach
    # the app as they would from the network.
    path_info = unquote_to_bytes("/" + "/".join(parts)).decode("latin-1")
    response = client.open("/", method=method, query_string={"lang": lang},
                           environ_overrides={"PATH_INFO": path_info},
                           data=body.encode("utf-8", "surrogatepass") if body else None)
    assert_sound(response, lang)
