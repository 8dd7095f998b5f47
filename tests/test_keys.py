"""Keys that rotate: the current key signs, the old ones still verify, the pepper stays."""

from __future__ import annotations

from datetime import timedelta

from tests.helpers import VALID, link, local_path, stored_requests, submit
from tests.test_tokens import LEGACY
from tracker import config, suppression, tokens

OLD, NEW = "test-secret", "rotated-secret"


def _rotated_app(app, **extra):
    """Another instance of the app, after SECRET_KEY was rotated as the README says."""
    from app import create_app

    return create_app(dict(app.config, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD],
                           ADDRESS_PEPPER=OLD, **extra))


def test_after_rotating_the_key_old_links_work_and_suppressions_hold(
        app, client, outbox, table, clock):
    submit(client, email="first@example.com")
    unsubscribe = local_path(link(outbox()[0], "/unsubscribe/"))
    manage = local_path(link(outbox()[0], "/manage/"))
    postman = app.extensions["tracker"]
    postman.store.suppress(postman.store.address_key("bounced@example.com"), reason="bounce",
                           now=clock.now, until=clock.now + timedelta(days=365))

    rotated = _rotated_app(app)
    after = rotated.test_client()
    assert after.get(manage).status_code == 200
    assert after.post(unsubscribe).status_code == 200
    assert stored_requests(table)[0]["status"] == "stopped"
    # The suppression made under the old key still refuses the address.
    refused = submit(after, email="Bounced@example.com")
    assert refused.status_code == 400 and "We cannot email this address" in refused.get_data(
        as_text=True)
    # New links are signed with the new key only; the old one no longer signs anything.
    assert submit(after, email="second@example.com").status_code == 303
    fresh = local_path(link(outbox()[-1], "/manage/")).rsplit("/", 1)[1].split("?")[0]
    assert tokens.owner(NEW, "manage", fresh) and tokens.owner(OLD, "manage", fresh) is None
    assert len(stored_requests(table)) == 2


def test_after_rotating_the_key_unsubscribe_links_of_the_previous_format_still_work(
        app, client, table):
    submit(client)
    [item] = stored_requests(table)
    # A link as the tracker sent them before itsdangerous, for this request.
    table.put_item(Item=dict(item, pk="REQ#Zm9vYmFyYmF6cXV4cXV1eA", id="Zm9vYmFyYmF6cXV4cXV1eA"))
    after = _rotated_app(app).test_client()
    assert after.post(f"/unsubscribe/{LEGACY['unsubscribe']}").status_code == 200
    stopped = {i["id"]: i["status"] for i in stored_requests(table)}
    assert stopped == {"Zm9vYmFyYmF6cXV4cXV1eA": "stopped", item["id"]: "open"}


def test_a_link_signed_with_a_key_dropped_from_the_ring_is_refused(app, client, outbox):
    submit(client)
    manage = local_path(link(outbox()[0], "/manage/"))
    from app import create_app

    dropped = create_app(dict(app.config, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[],
                              ADDRESS_PEPPER=OLD))
    assert dropped.test_client().get(manage).status_code == 404


def test_the_pepper_keys_suppressions_and_falls_back_to_the_secret():
    assert config.address_pepper({"SECRET_KEY": OLD}) == OLD
    assert config.address_pepper({"SECRET_KEY": NEW, "ADDRESS_PEPPER": OLD}) == OLD
    assert suppression.address_key(OLD, "a@example.com") != suppression.address_key(
        NEW, "a@example.com")


def test_the_key_ring_and_the_pepper_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", NEW)
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", f" {OLD}, older-secret ,")
    monkeypatch.setenv("ADDRESS_PEPPER", "pepper")
    settings = config.from_environment()
    assert settings["SECRET_KEY_FALLBACKS"] == [OLD, "older-secret"]
    assert config.signing_keys(settings) == [NEW, OLD, "older-secret"]
    assert config.address_pepper(settings) == "pepper"
    monkeypatch.delenv("SECRET_KEY_FALLBACKS")
    monkeypatch.delenv("ADDRESS_PEPPER")
    settings = config.from_environment()
    assert settings["SECRET_KEY_FALLBACKS"] == [] and config.address_pepper(settings) == NEW


def _carry_cookies(source, target) -> None:
    """The browser is the same across apps: give ``target`` the cookies ``source`` has."""
    for cookie in source._cookies.values():
        target.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


def test_a_form_sent_again_across_a_rotation_stays_one_request(app, client, outbox, table):
    page = client.get("/").get_data(as_text=True)
    import re

    fields = dict(re.findall(r'name="(csrf_token|submission_id)" type="hidden" '
                             r'value="([^"]*)"', page))
    data = dict(VALID, **fields)
    assert client.post("/", data=data).status_code == 303
    # The key rotates; the traveller presses "back" and sends the very same form again.
    after = _rotated_app(app).test_client()
    _carry_cookies(client, after)
    again = after.post("/", data=data)
    assert again.status_code == 303
    assert len(stored_requests(table)) == 1 and len(outbox()) == 1
