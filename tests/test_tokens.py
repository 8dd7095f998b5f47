"""Links: opaque, one purpose and one request each, 4xx when forged, a way back when old."""

from __future__ import annotations

import base64
import os
import re
import time

import pytest

from tests.helpers import csrf_token, link, local_path, stored_requests, submit
from tracker import tokens

SECRET = "test-secret"
DAY = 86400
ID = "Zm9vYmFyYmF6cXV4cXV1eA"  # the shape of tracking.request_id_for's ids


def test_a_token_reads_back_as_its_request_id():
    token = tokens.make(SECRET, "check", ID)
    assert tokens.read(SECRET, "check", token, max_age_seconds=DAY) == ID


@pytest.mark.parametrize("made_for, used_for", [
    ("check", "manage"), ("manage", "check"), ("unsubscribe", "manage"),
    ("check", "unsubscribe")])
def test_a_token_made_for_one_purpose_is_refused_for_another(made_for, used_for):
    token = tokens.make(SECRET, made_for, ID)
    with pytest.raises(tokens.BadToken) as caught:
        tokens.read(SECRET, used_for, token, max_age_seconds=DAY)
    assert not isinstance(caught.value, tokens.ExpiredToken)


def test_changing_any_character_of_a_token_breaks_it():
    token = tokens.make(SECRET, "manage", ID)
    for i, char in enumerate(token):
        for other in {"A", "g", "-", "_"} - {char}:
            forged = token[:i] + other + token[i + 1:]
            with pytest.raises(tokens.BadToken):
                tokens.read(SECRET, "manage", forged, max_age_seconds=DAY)


def test_every_truncation_and_extension_of_a_token_is_refused():
    token = tokens.make(SECRET, "manage", ID)
    for cut in range(len(token)):
        with pytest.raises(tokens.BadToken):
            tokens.read(SECRET, "manage", token[:cut], max_age_seconds=DAY)
    for extra in ("A", "AA", "=", " ", "%00", "é"):
        with pytest.raises(tokens.BadToken):
            tokens.read(SECRET, "manage", token + extra, max_age_seconds=DAY)


def test_a_token_signed_with_another_secret_is_refused():
    token = tokens.make("another-secret", "check", ID)
    with pytest.raises(tokens.BadToken):
        tokens.read(SECRET, "check", token, max_age_seconds=DAY)


def test_an_old_token_is_expired_and_still_says_whose_it_was():
    made = 1_800_000_000
    token = tokens.make(SECRET, "check", ID, now=made)
    assert tokens.read(SECRET, "check", token, max_age_seconds=DAY, now=made + DAY) == ID
    with pytest.raises(tokens.ExpiredToken) as caught:
        tokens.read(SECRET, "check", token, max_age_seconds=DAY, now=made + DAY + 1)
    assert caught.value.request_id == ID
    assert tokens.owner(SECRET, "check", token) == ID
    assert tokens.owner(SECRET, "manage", token) is None


def test_a_token_shows_neither_the_request_id_nor_its_age():
    made = int(time.time())
    token = tokens.make(SECRET, "check", ID, now=made)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert ID not in token and ID.encode() not in raw
    assert base64.urlsafe_b64decode(ID + "==") not in raw
    assert made.to_bytes(4, "big") not in raw and str(made).encode() not in raw
    # The same request's links, for other purposes or made a second apart, look unrelated:
    # nobody can tell from two links that they are about one request.
    others = [tokens.make(SECRET, p, ID, now=made) for p in ("manage", "unsubscribe")]
    others.append(tokens.make(SECRET, "check", ID, now=made + 1))
    for other in others:
        assert len(os.path.commonprefix([token, other])) < 4
        assert sum(a == b for a, b in zip(token, other, strict=True)) < len(token) // 4


def test_a_token_is_short_enough_for_a_link_and_url_safe():
    token = tokens.make(SECRET, "unsubscribe", ID)
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,80}", token)


def test_unknown_purposes_are_a_programming_error():
    with pytest.raises(ValueError):
        tokens.make(SECRET, "delete", ID)


# --- through the app -----------------------------------------------------------------


def _token(app, purpose: str, item: dict) -> str:
    return tokens.make(app.config["SECRET_KEY"], purpose, item["id"])


def test_a_link_used_on_another_page_is_not_found(app, client, table):
    submit(client)
    [item] = stored_requests(table)
    check_token, manage_token = _token(app, "check", item), _token(app, "manage", item)
    assert client.get(f"/manage/{check_token}").status_code == 404
    assert client.get(f"/done/{check_token}").status_code == 404
    assert client.get(f"/check/{manage_token}").status_code == 404
    assert client.post(f"/unsubscribe/{manage_token}").status_code == 404
    token = csrf_token(client, f"/manage/{manage_token}")
    assert client.post(f"/manage/{check_token}/delete",
                       data={"csrf_token": token}).status_code == 404
    assert client.post(f"/manage/{check_token}/stop",
                       data={"csrf_token": token}).status_code == 404
    [after] = stored_requests(table)
    assert after["status"] == "open" and after["version"] == item["version"]


def test_one_requests_link_acts_on_that_request_only(app, client, table):
    submit(client, email="first@example.com")
    [first] = stored_requests(table)
    submit(client, email="second@example.com")
    manage = f"/manage/{_token(app, 'manage', first)}"
    response = client.post(f"{manage}/delete", data={"csrf_token": csrf_token(client, manage)})
    assert response.status_code == 303
    assert [item["email"] for item in stored_requests(table)] == ["second@example.com"]


@pytest.mark.parametrize("lang, title", [("en", "Page not found"), ("zh", None)])
def test_a_tampered_or_truncated_link_is_a_404_page_in_the_links_language(
        app, client, table, lang, title):
    submit(client)
    [item] = stored_requests(table)
    path = f"/check/{_token(app, 'check', item)}"
    assert client.get(path).status_code == 200
    flipped = path[:-1] + ("A" if path[-1] != "A" else "B")
    for bad in (flipped, path[:-5], path + "x", "/check/"):
        page = client.get(f"{bad}?lang={lang}")
        assert page.status_code == 404, bad
        html = page.get_data(as_text=True)
        assert f'<html lang="{lang}"' in html
        assert (title or _zh("Page not found")) in html


def _zh(text: str) -> str:
    from babel.support import Translations

    from tests.conftest import ROOT

    translated = Translations.load(str(ROOT / "translations"), ["zh"]).gettext(text)
    assert translated != text, f"no Chinese for {text!r} in the catalog"
    return translated


def _expired(app, purpose: str, request_id: str) -> str:
    return tokens.make(app.config["SECRET_KEY"], purpose, request_id, now=time.time() - 400 * DAY)


def test_an_expired_link_offers_new_links_and_sends_them_to_the_stored_address(
        app, client, outbox, table):
    submit(client, email="owner@example.com")
    [item] = stored_requests(table)
    old = _expired(app, "check", item["id"])
    page = client.get(f"/check/{old}?lang=en")
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert "This link has expired" in html and "Email me new links" in html
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)

    # A typed address is never used: the links go to the request's own.
    answer = client.post(action.replace("&amp;", "&"), data={
        "csrf_token": csrf_token(client, f"/check/{old}"), "email": "attacker@example.com"})
    assert answer.status_code == 303
    assert "If we still hold this request" in client.get(answer.location).get_data(as_text=True)
    fresh = outbox()[-1]
    assert fresh["to"] == "owner@example.com" and len(outbox()) == 2
    assert fresh["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    new_check = local_path(link(fresh, "/check/"))
    assert client.get(new_check).status_code == 200
    assert client.get(local_path(link(fresh, "/manage/"))).status_code == 200


def _ask_for_new_links(client, purpose: str, token: str):
    page = client.get(f"/{purpose}/{token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    return client.post(f"/renew/{purpose}/{token}?lang=en", data={"csrf_token": csrf})


def test_new_links_are_rate_limited_per_request_with_the_same_neutral_answer(
        app, client, outbox, table):
    submit(client)
    [item] = stored_requests(table)
    old = _expired(app, "manage", item["id"])
    answers = [_ask_for_new_links(client, "manage", old) for _ in range(5)]
    assert {a.status_code for a in answers} == {303}
    assert {a.location for a in answers} == {answers[0].location}
    limit = app.config["FRESH_LINKS_PER_REQUEST_PER_DAY"]
    assert len(outbox()) == 1 + limit


def test_asking_for_new_links_reveals_nothing_about_a_deleted_request(
        app, client, outbox, table):
    submit(client)
    [item] = stored_requests(table)
    old = _expired(app, "check", item["id"])
    table.delete_item(Key={"pk": item["pk"]})
    answer = _ask_for_new_links(client, "check", old)
    assert answer.status_code == 303 and answer.location.startswith("/renewed")
    assert len(outbox()) == 1  # the receipt only


def test_asking_for_new_links_needs_a_genuine_token_and_the_form(app, client, outbox, table):
    submit(client)
    [item] = stored_requests(table)
    old = _expired(app, "check", item["id"])
    csrf = csrf_token(client)
    assert client.post(f"/renew/check/{old[:-2]}", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"/renew/manage/{old}", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"/renew/delete/{old}", data={"csrf_token": csrf}).status_code == 404
    no_csrf = client.post(f"/renew/check/{old}?lang=en")
    assert no_csrf.status_code == 400
    assert "Please press the button again" in no_csrf.get_data(as_text=True)
    assert len(outbox()) == 1


def test_the_expired_page_speaks_the_links_language(app, client, table):
    submit(client)
    [item] = stored_requests(table)
    page = client.get(f"/manage/{_expired(app, 'manage', item['id'])}?lang=zh")
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert '<html lang="zh"' in html and "This link has expired" not in html


def test_an_unsubscribe_link_works_however_old(app, client, table):
    submit(client)
    [item] = stored_requests(table)
    old = _expired(app, "unsubscribe", item["id"])
    assert client.get(f"/unsubscribe/{old}").status_code == 200
    assert client.post(f"/unsubscribe/{old}").status_code == 200
    [after] = stored_requests(table)
    assert after["status"] == "stopped"
