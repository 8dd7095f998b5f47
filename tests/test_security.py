"""HTTP hardening: headers on every response, cookies, the body cap, friendly CSRF failures."""

from __future__ import annotations

import re

import pytest

from tests.helpers import VALID, csrf_token, stored_requests, submit
from tracker import tokens

PAGES = [("GET", "/"), ("GET", "/?lang=zh"), ("POST", "/"), ("GET", "/no/such/page"),
         ("DELETE", "/"), ("GET", "/manage/forged"), ("GET", "/deleted"),
         ("GET", "/static/timezone.js"), ("POST", "/renew/check/forged")]


def _directives(policy: str) -> dict[str, str]:
    return dict((part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";"))


@pytest.mark.parametrize("method, path", PAGES)
def test_every_response_carries_the_security_headers(client, method, path):
    response = client.open(path, method=method)
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31536000
    csp = _directives(headers["Content-Security-Policy"])
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval, nothing foreign
    assert "unsafe" not in csp["style-src"]
    assert csp["base-uri"] == "'none'" and csp["form-action"] == "'self'"


def test_the_inline_style_is_allowed_by_a_fresh_nonce_and_no_page_has_inline_script(client):
    nonces = set()
    for _ in range(2):
        response = client.get("/")
        nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])[1]
        page = response.get_data(as_text=True)
        assert re.findall(r"<style[^>]*>", page) == [f'<style nonce="{nonce}">']
        nonces.add(nonce)
        assert all(re.search(r'\bsrc="', tag) for tag in re.findall(r"<script[^>]*>", page))
        assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either
        assert " style=" not in page
    assert len(nonces) == 2


def test_pages_about_a_request_are_never_cached(app, client, table):
    submit(client)
    [item] = stored_requests(table)
    manage = client.get(f"/manage/{tokens.make(app.config['SECRET_KEY'], 'manage', item['id'])}")
    assert manage.status_code == 200 and manage.headers["Cache-Control"] == "no-store"


def _production_app(moto_endpoint, **extra):
    """The app as on Lambda: not TESTING, not local, its own secret."""
    from app import create_app

    return create_app({"SECRET_KEY": "production-like", "MAIL_FROM": "tracker@example.com",
                       "BASE_URL": "https://tracker.example/prod", **extra})


def test_cookies_are_secure_http_only_and_same_site_lax_in_production(moto_endpoint):
    app = _production_app(moto_endpoint)
    assert not app.config.get("TESTING") and not app.config["LOCAL_MODE"]
    cookie = app.test_client().get("/").headers["Set-Cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags


def test_the_local_sandbox_drops_secure_and_hsts_for_plain_http(moto_endpoint, monkeypatch):
    monkeypatch.setenv("LOCAL_MODE", "1")
    app = _production_app(moto_endpoint)
    response = app.test_client().get("/")
    flags = {part.strip().lower() for part in response.headers["Set-Cookie"].split(";")[1:]}
    assert "secure" not in flags and {"httponly", "samesite=lax"} <= flags
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_oversized_form_is_a_413_page_saying_what_was_typed_is_lost(
        client, table, lang):
    data = dict(VALID, csrf_token=csrf_token(client), phone="5" * 100_000)
    response = client.post(f"/?lang={lang}", data=data)
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}"' in page
    if lang == "en":
        assert "could not keep what you typed" in page
    else:
        assert "Too much data" not in page
    assert stored_requests(table) == []


def test_a_form_without_its_csrf_token_is_shown_again_with_its_values(client, table):
    response = client.post("/", data=dict(VALID, phone="050 111 22 33"))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "send the form again" in page
    assert 'value="traveller@example.com"' in page and 'value="050 111 22 33"' in page
    assert stored_requests(table) == []


def test_a_check_answer_without_its_csrf_token_shows_the_buttons_again(app, client, table):
    submit(client)
    [item] = stored_requests(table)
    path = f"/check/{tokens.make(app.config['SECRET_KEY'], 'check', item['id'])}"
    response = client.post(path, data={"answer": "cancelled", "csrf_token": "stale"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Please press one of the buttons again" in page
    assert 'value="cancelled"' in page and 'name="csrf_token"' in page
    [after] = stored_requests(table)
    assert after["status"] == "open"


@pytest.mark.parametrize("button", ["stop", "delete"])
def test_a_manage_button_without_its_csrf_token_shows_the_page_again_and_does_nothing(
        app, client, table, button):
    submit(client)
    [item] = stored_requests(table)
    path = f"/manage/{tokens.make(app.config['SECRET_KEY'], 'manage', item['id'])}"
    response = client.post(f"{path}/{button}?lang=en", data={"csrf_token": "stale"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Please press the button again" in page and "Delete my data now" in page
    [after] = stored_requests(table)
    assert after["status"] == "open" and after["version"] == item["version"]
    # The re-shown page's own token works.
    fresh = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    assert client.post(f"{path}/{button}", data={"csrf_token": fresh}).status_code == 303


# --- mail headers as the RFCs write them --------------------------------------------


def _raw_messages(moto_endpoint) -> list[str]:
    """The raw MIME moto's SES accepted, as sent: no parser between us and the bytes."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{moto_endpoint}/moto-api/data.json") as answer:
        return [m["raw_data"] for m in json.load(answer)["ses"]["RawMessage"]]


def test_list_unsubscribe_goes_out_as_a_plain_url_on_one_line(client, moto_endpoint):
    assert submit(client).status_code == 303
    [raw] = _raw_messages(moto_endpoint)
    headers = raw.split("\r\n\r\n", 1)[0]
    [line] = [h for h in headers.split("\r\n") if h.lower().startswith("list-unsubscribe:")]
    assert re.fullmatch(r"List-Unsubscribe: <https://tracker\.example/dev/unsubscribe/"
                        r"[A-Za-z0-9_.-]+\?lang=\w+>", line), line
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in headers
    assert "=?" not in line and "\n" not in headers.replace("\r\n", "")


ENCODED_WORDS = ["=?utf-8?b?Y2VvQGJhbmsuZXhhbXBsZT4sIDw=?=@attacker.example",
                 "=?utf-8?q?ceo=40bank.example=3E=2C_=3C?=@attacker.example",
                 "x=?iso-8859-1?q?a?=@example.com"]


@pytest.mark.parametrize("address", ENCODED_WORDS)
def test_an_address_with_an_encoded_word_is_refused_at_the_form(
        client, table, outbox, address):
    refused = submit(client, email=address)
    assert refused.status_code == 400
    assert re.search(r'id="email-error"[^>]*>[^<]*with “=\?” in it cannot be used',
                     refused.get_data(as_text=True))
    assert stored_requests(table) == [] and outbox() == []


@pytest.mark.parametrize("address", [*ENCODED_WORDS, "a@example.com, b@example.com"])
def test_the_to_header_is_the_address_or_nothing_is_sent(address):
    from tracker.mail import Message, PermanentMailError, build_mime

    with pytest.raises(PermanentMailError):
        build_mime(from_address="tracker@example.com", to_address=address,
                   message=Message("s", "t", "<p>h</p>"))
    raw = build_mime(from_address="tracker@example.com", to_address="a.b+c@example.com",
                     message=Message("s", "t", "<p>h</p>")).decode()
    assert "\r\nTo: a.b+c@example.com\r\n" in raw
