"""Links: signed, one purpose and one request each, 4xx when forged, a way back when old."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from itsdangerous import BadData

from tests.helpers import csrf_token, link, local_path, stored_requests, submit
from tracker import tokens

SECRET = "test-secret"
PURPOSES = {"check", "manage", "unsubscribe"}
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


def test_a_token_is_itsdangerous_signed_with_a_salt_per_purpose_and_its_issue_time():
    from itsdangerous import URLSafeTimedSerializer

    made = 1_800_000_000
    token = tokens.make(SECRET, "check", ID, now=made)
    # The library's own reader, with the purpose's salt, reads it: no home-made format.
    reader = URLSafeTimedSerializer(SECRET, salt="esim-tracker/link/check",
                                    signer_kwargs={"digest_method": hashlib.sha256})
    request_id, issued = reader.loads(token, return_timestamp=True)
    assert request_id == ID and issued.timestamp() == made
    with pytest.raises(BadData):
        URLSafeTimedSerializer(SECRET, salt="esim-tracker/link/manage",
                               signer_kwargs={"digest_method": hashlib.sha256}).loads(token)


def test_a_token_is_short_enough_for_a_link_and_url_safe():
    token = tokens.make(SECRET, "unsubscribe", ID)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{40,100}", token)


# Made by the previous format (an SIV-like seal from HMAC) with SECRET, for ID, at
# 1_790_000_000: emails already sent carry such links, and unsubscribe ones never expire.
LEGACY = {
    "check": "eIgyIEmtAb1Jeop2kTfDjLZ3TVZswG6wo41OvQcBJJW3r69k3WSAB6diLg",
    "manage": "u9PP9UjWsBgz_TdDwPAru_codB4ok1FL8KMKNkwpWHvsw7PHri21yxjxpQ",
    "unsubscribe": "CWSkkwiW70lgNk04yHBz6jBMrRUf_a5qlYRCl_Nzs22EViiCvoxHvbKDZw",
}


@pytest.mark.parametrize("purpose", sorted(LEGACY))
def test_links_of_the_previous_format_are_still_read_for_their_purpose_only(purpose):
    legacy = LEGACY[purpose]
    made = 1_790_000_000
    assert tokens.read(SECRET, purpose, legacy, max_age_seconds=DAY, now=made + 10) == ID
    with pytest.raises(tokens.ExpiredToken) as caught:
        tokens.read(SECRET, purpose, legacy, max_age_seconds=DAY, now=made + DAY + 1)
    assert caught.value.request_id == ID
    # After a rotation, with the old key among the fallbacks.
    assert tokens.owner(["new-secret", SECRET], purpose, legacy) == ID
    assert tokens.owner("new-secret", purpose, legacy) is None
    for other in PURPOSES - {purpose}:
        assert tokens.owner(SECRET, other, legacy) is None
    for i in range(len(legacy)):
        forged = legacy[:i] + ("A" if legacy[i] != "A" else "B") + legacy[i + 1:]
        assert tokens.owner(SECRET, purpose, forged) is None


def test_the_current_key_signs_and_the_fallbacks_still_verify():
    old = tokens.make("old-secret", "manage", ID)
    ring = ["new-secret", "old-secret"]
    assert tokens.read(ring, "manage", old, max_age_seconds=DAY) == ID
    fresh = tokens.make(ring, "manage", ID)
    assert tokens.read("new-secret", "manage", fresh, max_age_seconds=DAY) == ID
    with pytest.raises(tokens.BadToken):
        tokens.read("old-secret", "manage", fresh, max_age_seconds=DAY)
    with pytest.raises(tokens.BadToken):
        tokens.read("new-secret", "manage", old, max_age_seconds=DAY)


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


def test_no_fresh_links_for_a_request_that_was_unsubscribed(app, client, outbox, table):
    submit(client)
    [item] = stored_requests(table)
    assert client.post(f"/unsubscribe/{_token(app, 'unsubscribe', item)}").status_code == 200
    old = _expired(app, "check", item["id"])
    answers = [_ask_for_new_links(client, "check", old) for _ in range(5)]
    assert {a.status_code for a in answers} == {303}  # the same neutral page
    assert len(outbox()) == 1  # the receipt only


@pytest.mark.parametrize("status", ["stopped", "failed", "verified", "escalated"])
def test_no_fresh_links_for_a_closed_request(app, client, outbox, table, status):
    submit(client)
    [item] = stored_requests(table)
    table.update_item(Key={"pk": item["pk"]}, UpdateExpression="SET #s = :s REMOVE next_kind",
                      ExpressionAttributeNames={"#s": "status"},
                      ExpressionAttributeValues={":s": status})
    assert _ask_for_new_links(client, "manage", _expired(app, "manage", item["id"])
                              ).status_code == 303
    assert len(outbox()) == 1


def test_only_an_expired_check_or_manage_link_can_ask_for_new_links(
        app, client, outbox, table):
    submit(client)
    [item] = stored_requests(table)
    csrf = csrf_token(client)
    # The unsubscribe token never expires, and a live link needs no new one.
    for purpose, token in [("unsubscribe", _token(app, "unsubscribe", item)),
                           ("unsubscribe", _expired(app, "unsubscribe", item["id"])),
                           ("check", _token(app, "check", item)),
                           ("manage", _token(app, "manage", item))]:
        answer = client.post(f"/renew/{purpose}/{token}", data={"csrf_token": csrf})
        assert answer.status_code == 404, purpose
    assert len(outbox()) == 1


def test_fresh_links_are_limited_per_mailbox_across_its_requests(app, client, outbox, table):
    app.config.update(FRESH_LINKS_PER_MAILBOX_PER_DAY=2)
    for address in ("Victim+1@gmail.com", "v.ictim@googlemail.com", "victim@gmail.com"):
        submit(client, email=address)
    assert len(outbox()) == 3
    for item in stored_requests(table):
        _ask_for_new_links(client, "manage", _expired(app, "manage", item["id"]))
    assert len(outbox()) == 3 + 2
