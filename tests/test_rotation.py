"""Key rotation in two phases, on moto's SSM: apps built from each phase's parameters
stand in for the containers that read them at their cold start."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from deploy import secret
from tests.helpers import VALID, link, local_path, stored_requests, submit
from tracker import config, feedback, forms, policy, tokens

PATH = "/esim-tracker/prod/"
# moto stamps parameters with the real clock, and promotion compares that stamp with the
# simulated one: so the simulated clock starts an hour after the real one, whatever the
# day the suite runs (a fixed date here broke the suite on the day after it).
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


@pytest.fixture
def ssm(app):
    """The emulated SSM of the test's fresh account (the app fixture reset it)."""
    from tracker import aws

    return aws.client("ssm")


def container(app, ssm):
    """An app as a container starting now would build it: the stage's SSM values."""
    from app import create_app

    stored = {p["Name"].removeprefix(PATH): p["Value"] for p in ssm.get_parameters(
        Names=[PATH + n for n in config.STORED_SECRETS], WithDecryption=True)["Parameters"]}
    ring = config.key_ring_from_environment(stored)
    return create_app(dict(app.config, SECRET_KEY=stored["SECRET_KEY"],
                           SECRET_KEY_FALLBACKS=ring["SECRET_KEY_FALLBACKS"],
                           ADDRESS_PEPPER=ring.get("ADDRESS_PEPPER")))


def rotate(ssm, now):
    """Both phases, with `zappa update` between them."""
    secret.rotate(ssm, PATH, now=now)
    promote(ssm, now)


def updated_after_publishing(ssm, name: str) -> datetime:
    """When `zappa update` finished: a minute after the parameter was published."""
    return ssm.get_parameter(Name=PATH + name)["Parameter"]["LastModifiedDate"] + timedelta(
        minutes=1)


def promote(ssm, now):
    """Promote at ``now``, `zappa update` having run after the key was published."""
    secret.promote(ssm, PATH, now=now, settle=0,
                   updated_at=updated_after_publishing(ssm, "SECRET_KEY_FALLBACKS"))


def _carry_cookies(source, target) -> None:
    for cookie in source._cookies.values():
        target.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


# ── Rotation refuses to orphan data ──────────────────────────────────────────────────

def test_rotation_refuses_a_stage_whose_pepper_is_not_stored_apart(app, ssm):
    ssm.put_parameter(Name=PATH + "SECRET_KEY", Value="older-stage-key", Type="SecureString")
    with pytest.raises(secret.RotationRefused, match="ADDRESS_PEPPER"):
        secret.rotate(ssm, PATH, now=NOW)
    assert [p["Name"] for p in ssm.describe_parameters()["Parameters"]] == [
        PATH + "SECRET_KEY"]
    # The set-up command pins the pepper to the key the stage keyed its items with.
    assert secret.ensure(ssm, PATH) == {"SECRET_KEY": False, "ADDRESS_PEPPER": True}
    pepper = ssm.get_parameter(Name=PATH + "ADDRESS_PEPPER", WithDecryption=True)
    assert pepper["Parameter"]["Value"] == "older-stage-key"
    secret.rotate(ssm, PATH, now=NOW)


def test_a_complainer_stays_suppressed_across_rotations(app, ssm):
    ssm.put_parameter(Name=PATH + "SECRET_KEY", Value="older-stage-key", Type="SecureString")
    before = container(app, ssm)  # no pepper: its items are keyed with SECRET_KEY
    feedback.apply(before.extensions["tracker"].store,
                   feedback.Feedback("complaint", ("complainer@example.com",)), now=NOW)
    secret.ensure(ssm, PATH)
    for n in range(3):
        rotate(ssm, NOW + timedelta(days=30 * n))
        refused = submit(container(app, ssm).test_client(), email="Complainer@example.com")
        assert refused.status_code == 400, n
        assert "We cannot email this address" in refused.get_data(as_text=True)


# ── Key lifetimes match link lifetimes ───────────────────────────────────────────────

def test_an_unsubscribe_link_outlives_more_rotations_than_the_old_ring_held(
        app, ssm, outbox, table):
    secret.ensure(ssm, PATH)
    first = container(app, ssm)
    submit(first.test_client(), email="first@example.com")
    unsubscribe = local_path(link(outbox()[0], "/unsubscribe/"))
    for n in range(8):  # the ring kept 5 old keys: 6 rotations broke this link
        rotate(ssm, NOW + timedelta(days=30 * n))
    ring = ssm.get_parameter(Name=PATH + "SECRET_KEY_FALLBACKS", WithDecryption=True)
    assert len(config.ring_keys(ring["Parameter"]["Value"])) == 8
    last = container(app, ssm).test_client()
    assert last.post(unsubscribe).status_code == 200
    assert stored_requests(table)[0]["status"] == "stopped"


def test_a_retired_key_leaves_the_ring_only_once_no_request_can_hold_its_links(app, ssm):
    secret.ensure(ssm, PATH)
    rotate(ssm, NOW)
    retired = config.stored_secrets.__wrapped__(PATH)["SECRET_KEY_FALLBACKS"]
    [entry] = secret.parse_ring(retired)
    later = NOW + secret.KEY_RETENTION
    secret.rotate(ssm, PATH, now=later)  # on the last day it still verifies
    assert entry.key in config.ring_keys(
        config.stored_secrets.__wrapped__(PATH)["SECRET_KEY_FALLBACKS"])
    promote(ssm, later)
    secret.rotate(ssm, PATH, now=later + timedelta(days=1))
    assert entry.key not in config.ring_keys(
        config.stored_secrets.__wrapped__(PATH)["SECRET_KEY_FALLBACKS"])


def test_retention_outlasts_the_longest_a_request_lives():
    """A request lives at most a reseller plan (from the form) plus its closed time plus
    DynamoDB's TTL sweep (AWS: typically within a few days; two weeks allowed here)."""
    sweep = timedelta(days=14)
    longest = timedelta(days=forms.MAX_PLAN_DAYS) + policy.CLOSED_TTL + sweep
    assert secret.KEY_RETENTION >= longest
    assert secret.PEPPER_RETENTION >= feedback.SUPPRESSION_TTL + sweep


# ── Two phases: no container signs what another live one cannot verify ─────────────

def _form_on(signer, verifier, email: str):
    """A form rendered by ``signer``, sent to ``verifier`` (the same browser)."""
    browser = signer.test_client()
    page = browser.get("/").get_data(as_text=True)
    fields = dict(re.findall(r'name="(csrf_token|submission_id)" type="hidden" '
                             r'value="([^"]*)"', page))
    other = verifier.test_client()
    _carry_cookies(browser, other)
    data = dict(VALID, email=email, **fields)
    return other.post("/", data=data), browser.post("/", data=data)


def _works_across(signer, verifier, outbox, table, n: int) -> None:
    """Links, submission ids, session cookies and CSRF tokens of ``signer`` verify on
    ``verifier``."""
    sent_before = len(outbox())
    there, back = _form_on(signer, verifier, f"t{n}@example.com")
    assert there.status_code == 303 and back.status_code == 303
    assert len(outbox()) == sent_before + 1  # one request, one receipt
    made = signer.test_client()
    with signer.app_context():
        keys = config.signing_keys(signer.config)
    request_id = [i["id"] for i in stored_requests(table) if i["email"] == f"t{n}@example.com"]
    for purpose, path in (("manage", "/manage/"), ("check", "/check/")):
        token = tokens.make(keys, purpose, request_id[0])
        page = verifier.test_client().get(f"{path}{token}")
        assert page.status_code == 200, purpose
    # The check page's own form (its CSRF token) from one, posted to the other.
    token = tokens.make(keys, "check", request_id[0])
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                     made.get(f"/check/{token}").get_data(as_text=True)).group(1)
    answering = verifier.test_client()
    _carry_cookies(made, answering)
    answered = answering.post(f"/check/{token}", data={
        "csrf_token": csrf, "answer": "cancelled", "evidence": "written"})
    assert answered.status_code == 303


def test_every_live_container_verifies_what_every_other_signs(app, ssm, outbox, table):
    secret.ensure(ssm, PATH)
    p0 = container(app, ssm)
    secret.rotate(ssm, PATH, now=NOW)
    p1 = container(app, ssm)
    promote(ssm, NOW)
    p2 = container(app, ssm)
    n = 0
    # Live together: p0 and p1 until the first update, then p1 and p2 until the second.
    for a, b in ((p0, p1), (p1, p0), (p1, p2), (p2, p1), (p2, p2)):
        _works_across(a, b, outbox, table, n)
        n += 1
    # What two phases avoid: a container that signs with a key p0 does not hold.
    with p2.app_context():
        fresh = tokens.make(config.signing_keys(p2.config), "manage",
                            stored_requests(table)[0]["id"])
    assert p0.test_client().get(f"/manage/{fresh}").status_code == 404


def test_promote_waits_for_an_update_of_the_function_after_the_key_was_published(app, ssm):
    from tests.test_package import create_function
    from tracker import aws

    functions = aws.client("lambda")
    create_function(functions, "esim-tracker-prod", {})
    secret.ensure(ssm, PATH)
    secret.rotate(ssm, PATH, now=datetime.now(UTC))
    with pytest.raises(secret.RotationRefused, match="make update"):
        secret.promote(ssm, PATH, now=datetime.now(UTC), settle=0,
                       updated_at=secret.function_updated_at(functions, "esim-tracker-prod"))
    before = config.stored_secrets.__wrapped__(PATH)
    # moto keeps LastModified at creation on an update: the update's end is given here.
    published = ssm.get_parameter(Name=PATH + "SECRET_KEY_FALLBACKS")["Parameter"][
        "LastModifiedDate"]
    updated = published + timedelta(seconds=30)
    with pytest.raises(secret.RotationRefused, match="wait"):  # invocations may still run
        secret.promote(ssm, PATH, now=updated + timedelta(seconds=5), updated_at=updated,
                       settle=0)
    assert config.stored_secrets.__wrapped__(PATH) == before
    secret.promote(ssm, PATH, now=updated + timedelta(seconds=61), updated_at=updated,
                   settle=0)
    after = config.stored_secrets.__wrapped__(PATH)
    assert after["SECRET_KEY"] == secret.parse_ring(before["SECRET_KEY_FALLBACKS"])[0].key
    assert config.ring_keys(after["SECRET_KEY_FALLBACKS"]) == [before["SECRET_KEY"]]


def test_a_leaked_key_is_revoked_after_its_successor_is_promoted(app, ssm, outbox):
    secret.ensure(ssm, PATH)
    leaked = container(app, ssm)
    submit(leaked.test_client())
    manage = local_path(link(outbox()[0], "/manage/"))
    rotate(ssm, NOW)
    assert container(app, ssm).test_client().get(manage).status_code == 200
    secret.revoke_previous(ssm, PATH)
    assert container(app, ssm).test_client().get(manage).status_code == 404


# ── A leaked ADDRESS_PEPPER ──────────────────────────────────────────────────────────

def _promote_pepper(ssm, now):
    secret.promote_pepper(ssm, PATH, now=now,
                          updated_at=updated_after_publishing(ssm, "ADDRESS_PEPPER"))


def _refused(app, ssm, address: str) -> bool:
    answer = submit(container(app, ssm).test_client(), email=address)
    return answer.status_code == 400 and "We cannot email this address" in answer.get_data(
        as_text=True)


def test_a_leaked_pepper_is_replaced_and_every_suppression_still_holds(app, ssm, table):
    from tracker import suppression

    secret.ensure(ssm, PATH)
    old_pepper = config.stored_secrets.__wrapped__(PATH)["ADDRESS_PEPPER"]
    before = container(app, ssm)
    submit(before.test_client(), email="kept@example.com")  # a request holds the address
    submit(before.test_client(), email="open@example.com")
    store = before.extensions["tracker"].store
    for address in ("kept@example.com", "gone@example.com"):  # no request holds "gone"
        feedback.apply(store, feedback.Feedback("complaint", (address,)), now=NOW)

    secret.rotate_pepper(ssm, PATH, now=NOW)  # phase 1: looked up, writes nothing yet
    assert _refused(app, ssm, "kept@example.com") and _refused(app, ssm, "gone@example.com")
    _promote_pepper(ssm, NOW)  # phase 2: it writes; the leaked one is still looked up
    assert _refused(app, ssm, "kept@example.com") and _refused(app, ssm, "gone@example.com")

    assert secret.rekey_pepper(ssm, PATH, table) == {"requests": 2, "suppressions": 1}
    new_pepper = config.address_pepper(container(app, ssm).config)
    keys = {i["pk"] for i in table.scan()["Items"] if i["pk"].startswith("SUPP#")}
    assert keys == {suppression.address_key(new_pepper, "kept@example.com"),
                    # holds only a hash: stays under the leaked pepper until it expires
                    suppression.address_key(old_pepper, "gone@example.com")}
    assert {i["addr_key"] for i in stored_requests(table)} == {
        suppression.address_key(new_pepper, a) for a in ("kept@example.com",
                                                         "open@example.com")}
    assert _refused(app, ssm, "kept@example.com") and _refused(app, ssm, "gone@example.com")
    # A complaint now finds the re-keyed request and stops it.
    after = container(app, ssm).extensions["tracker"].store
    feedback.apply(after, feedback.Feedback("complaint", ("open@example.com",)), now=NOW)
    assert {i["email"]: i["status"] for i in stored_requests(table)}["open@example.com"] == (
        "stopped")
    # Once every item written under it has expired, the leaked pepper leaves the ring.
    secret.rotate_pepper(ssm, PATH, now=NOW + secret.PEPPER_RETENTION + timedelta(days=1))
    ring = config.ring_keys(config.stored_secrets.__wrapped__(PATH)["ADDRESS_PEPPER"])
    assert old_pepper not in ring and ring[0] == new_pepper and len(ring) == 2
