"""Abuse limits: shared by every instance, stored as keyed hashes, refused with the form kept."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.helpers import VALID, csrf_token, form_fields, stored_requests
from tracker import limits, suppression

CLIENT = "203.0.113.7"


def post_form(client, *, ip: str = CLIENT, lang: str = "en", environ: dict | None = None,
              **changes):
    """POST the form from ``ip`` with valid values, changed as given (None drops a field)."""
    data = dict(VALID, csrf_token=csrf_token(client))
    data.update(changes)
    return client.post(f"/?lang={lang}", data={k: v for k, v in data.items() if v is not None},
                       environ_base={"REMOTE_ADDR": ip, **(environ or {})})


def counters(table) -> list[dict]:
    return [item for item in table.scan()["Items"] if item["pk"].startswith("LIMIT#")]


@pytest.fixture
def limited(app):
    app.config.update(SUBMISSIONS_PER_IP_PER_HOUR=2, SUBMISSIONS_PER_ADDRESS_PER_DAY=2)
    return app


def test_over_the_hourly_limit_of_a_client_is_a_429_with_the_form_as_typed(
        limited, client, table, outbox):
    for n in range(2):
        assert post_form(client, email=f"t{n}@example.com").status_code == 303
    over = post_form(client, email="third@example.com", phone="055 765 43 21",
                     requested_on="2026-09-10")
    assert over.status_code == 429
    page = over.get_data(as_text=True)
    assert "Many forms were sent from your network in the last hour" in page
    assert 'value="third@example.com"' in page and 'value="055 765 43 21"' in page
    assert 'value="2026-09-10"' in page
    assert 0 < int(over.headers["Retry-After"]) <= 3600
    assert len(stored_requests(table)) == 2 and len(outbox()) == 2
    # Another network is not affected.
    assert post_form(client, ip="198.51.100.9", email="other@example.com").status_code == 303


def test_the_client_limit_resets_with_the_next_hour(limited, client, clock):
    for n in range(2):
        post_form(client, email=f"t{n}@example.com")
    assert post_form(client, email="x@example.com").status_code == 429
    clock.now += timedelta(hours=1)
    assert post_form(client, email="x@example.com").status_code == 303


def test_over_the_daily_limit_of_an_address_is_a_429_whatever_its_case(
        limited, client, table, clock):
    assert post_form(client, ip="192.0.2.1", email="Same@Example.com").status_code == 303
    assert post_form(client, ip="192.0.2.2", email="same@example.com").status_code == 303
    over = post_form(client, ip="192.0.2.3", email="SAME@example.com")
    assert over.status_code == 429
    assert "This email address has had several requests today" in over.get_data(as_text=True)
    assert len(stored_requests(table)) == 2
    clock.now += timedelta(days=1)
    assert post_form(client, ip="192.0.2.3", email="same@example.com").status_code == 303


GMAIL_SPELLINGS = [f"victim+{n}@gmail.com" for n in range(1, 6)] + [
    "v.ictim@gmail.com", "VICTIM@gmail.com", "victim@googlemail.com", "Vic.Tim@GMAIL.COM",
    "v.i.c.t.i.m+x@googlemail.com", "victim+@gmail.com", "vi.ctim+a.b@gmail.com",
    "victim@gmail.com", "victi.m@googlemail.com"]


def test_one_gmail_mailbox_is_limited_whatever_the_spelling_of_its_address(
        app, client, table, outbox):
    assert len(GMAIL_SPELLINGS) == 14
    answers = [post_form(client, ip=f"192.0.2.{n}", email=address).status_code
               for n, address in enumerate(GMAIL_SPELLINGS)]
    limit = app.config["SUBMISSIONS_PER_ADDRESS_PER_DAY"]
    assert answers == [303] * limit + [429] * (len(GMAIL_SPELLINGS) - limit)
    # Mail goes to each address exactly as typed; another mailbox is not affected.
    assert [m["to"] for m in outbox()] == GMAIL_SPELLINGS[:limit]
    assert post_form(client, ip="192.0.2.99", email="victim2@gmail.com").status_code == 303


@pytest.mark.parametrize("address, mailbox", [
    ("Victim+tag@Example.com", "victim@example.com"),
    ("v.ictim@example.com", "v.ictim@example.com"),  # dots matter outside Gmail
    ("v.i.ctim+a+b@googlemail.com", "victim@gmail.com"),
    ("VICTIM@gmail.com", "victim@gmail.com"),
])
def test_the_abuse_key_of_an_address_is_its_mailbox(address, mailbox):
    assert limits.mailbox_of(address) == mailbox


@pytest.mark.parametrize("address, identity", [
    ("J.Doe+trip@GMAIL.com", "jdoe@gmail.com"),  # a big free provider: the mailbox
    ("ivan@mail.ru", "ivan@mail.ru"),
    ("a@x.example.com", "@example.com"),  # elsewhere the registered domain, any subdomain
    ("b@example.com", "@example.com"),
    ("c@mail.firm.co.uk", "@firm.co.uk"),  # a registry's own second level keeps a third
    ("d@shop.com.az", "@shop.com.az"),
    # An ordinary domain that looks like a registry's (its owner can mint subdomains at
    # will): every address under it is one traveller, however many subdomains.
    ("e@one.co.tv", "@co.tv"), ("f@two.co.tv", "@co.tv"), ("g@x.com.de", "@com.de"),
])
def test_the_stats_count_a_domain_owner_as_one_traveller(address, identity):
    assert limits.stats_identity(address) == identity


def test_the_429_page_speaks_the_travellers_language(limited, client):
    for n in range(2):
        post_form(client, email=f"t{n}@example.com")
    over = post_form(client, lang="zh", email="t9@example.com")
    page = over.get_data(as_text=True)
    assert over.status_code == 429 and '<html lang="zh"' in page
    assert "Many forms were sent" not in page


def test_the_limits_hold_across_instances_of_the_app(limited, client, table):
    from app import create_app

    second = create_app(dict(limited.config))  # another Lambda instance, the same table
    other = second.test_client()
    assert post_form(client, email="a@example.com").status_code == 303
    assert post_form(other, email="b@example.com").status_code == 303
    assert post_form(client, email="c@example.com").status_code == 429
    assert post_form(other, email="d@example.com").status_code == 429
    assert len(stored_requests(table)) == 2


def test_counters_hold_no_address_in_clear_and_expire_with_their_window(
        limited, client, table, clock):
    post_form(client, email="private.person@example.com")
    found = counters(table)
    assert len(found) == 2
    text = repr(found)
    assert CLIENT not in text and "private.person" not in text and "example.com" not in text
    assert "203" not in text.replace("2026", "")
    for item in found:
        assert set(item) == {"pk", "n", "expires"} and item["n"] == 1
        lifetime = int(item["expires"]) - clock.now.timestamp()
        assert 0 < lifetime <= 86400


def test_a_refused_or_repeated_submission_counts_nothing(limited, client, table):
    first = dict(VALID, **form_fields(client))
    for _ in range(3):  # a double click and a reload: one request, counted once
        answer = client.post("/", data=first, environ_base={"REMOTE_ADDR": CLIENT})
        assert answer.status_code == 303
    assert {int(c["n"]) for c in counters(table)} == {1}
    post_form(client, email="second@example.com")
    assert post_form(client, email="third@example.com").status_code == 429
    assert sorted(int(c["n"]) for c in counters(table)) == [1, 1, 2]


def test_a_repeated_submission_at_the_limit_still_shows_its_confirmation(limited, client):
    data = dict(VALID, **form_fields(client))
    assert client.post("/", data=data, environ_base={"REMOTE_ADDR": CLIENT}).status_code == 303
    post_form(client, email="second@example.com")
    again = client.post("/", data=data, environ_base={"REMOTE_ADDR": CLIENT})
    assert again.status_code == 303 and again.location.startswith("/done/")


def test_a_limit_of_zero_is_no_limit(app, client):
    app.config.update(SUBMISSIONS_PER_IP_PER_HOUR=0, SUBMISSIONS_PER_ADDRESS_PER_DAY=1)
    for n in range(4):
        assert post_form(client, email=f"t{n}@example.com").status_code == 303


def test_the_limits_are_settings_read_from_the_environment(monkeypatch):
    from tracker import config

    monkeypatch.setenv("SUBMISSIONS_PER_IP_PER_HOUR", "7")
    monkeypatch.setenv("SUBMISSIONS_PER_ADDRESS_PER_DAY", "0")
    monkeypatch.setenv("FRESH_LINKS_PER_REQUEST_PER_DAY", "1")
    settings = config.from_environment()
    assert settings["SUBMISSIONS_PER_IP_PER_HOUR"] == 7
    assert settings["SUBMISSIONS_PER_ADDRESS_PER_DAY"] == 0
    assert settings["FRESH_LINKS_PER_REQUEST_PER_DAY"] == 1


def test_a_suppressed_address_is_refused_on_its_field_and_counted_for_the_client_only(
        app, client, table, outbox):
    address = "bounced@example.com"
    table.put_item(Item={"pk": suppression.address_key(app.config["SECRET_KEY"], address),
                         "reason": "bounce", "at": "2026-09-01T00:00:00Z"})
    refused = post_form(client, email="Bounced@example.com")
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert re.search(r'id="email-error"[^>]*>[^<]*We cannot email this address', page)
    assert 'value="Bounced@example.com"' in page
    assert stored_requests(table) == [] and outbox() == []
    assert [c["pk"].split("#")[1] for c in counters(table)] == [limits.IP_HOUR]


def test_asking_the_form_which_addresses_bounced_is_bounded_by_the_client_limit(
        limited, client, table):
    for n in range(5):
        table.put_item(Item={"pk": suppression.address_key(
            limited.config["SECRET_KEY"], f"gone{n}@example.com"), "reason": "bounce"})
    answers = [post_form(client, email=f"gone{n}@example.com") for n in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 429, 429, 429]
    assert all("We cannot email this address" not in a.get_data(as_text=True)
               for a in answers[2:])


def test_the_honeypot_stores_sends_and_counts_nothing(app, client, table, outbox):
    answer = post_form(client, website="http://spam.example/")
    assert answer.status_code == 400
    assert stored_requests(table) == [] and counters(table) == [] and outbox() == []


def test_a_submission_costs_two_dynamodb_calls_and_one_ses_call(app, client, table):
    from tracker import aws

    # The measured times are read once per instance and kept 5 minutes (tracker.stats).
    app.extensions["stats"].rows(app.config["CLOCK"]())
    calls = []
    dynamodb = {id(c): c for c in (table.meta.client, aws.client("dynamodb"))}
    for c in dynamodb.values():
        c.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(
            f"dynamodb.{model.name}"))
    ses = aws.client("sesv2", max_attempts=1)
    ses.meta.events.register("before-call.sesv2", lambda model, **_: calls.append(
        f"ses.{model.name}"))
    try:
        assert post_form(client).status_code == 303
    finally:
        for c in (*dynamodb.values(), ses):
            c.meta.events.unregister("before-call.dynamodb")
            c.meta.events.unregister("before-call.sesv2")
    assert sorted(calls) == ["dynamodb.TransactWriteItems", "dynamodb.UpdateItem",
                             "ses.SendEmail"]


# --- the client's address ----------------------------------------------------------


def _api_gateway_event(version: str, source_ip: str, forwarded: str) -> dict:
    headers = {"X-Forwarded-For": forwarded, "Host": "abc.execute-api.eu-central-1.amazonaws.com"}
    if version == "2.0":
        return {"version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": headers,
                "requestContext": {"http": {"method": "GET", "path": "/",
                                            "sourceIp": source_ip}}}
    return {"httpMethod": "GET", "path": "/", "headers": headers,
            "queryStringParameters": None,
            "requestContext": {"identity": {"sourceIp": source_ip}}}


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_the_client_is_api_gateways_source_ip_not_a_forged_forwarded_header(version):
    from zappa.wsgi import create_wsgi_request

    # A client on a regional API sends its own X-Forwarded-For; API Gateway appends the
    # real address. Zappa's REMOTE_ADDR takes the second-to-last entry: the forged one.
    event = _api_gateway_event(version, "198.51.100.23", "10.9.8.7, 198.51.100.23")
    environ = create_wsgi_request(event)
    environ["lambda.event"] = event  # as Zappa's handler adds it
    assert environ["REMOTE_ADDR"] == "10.9.8.7"
    assert limits.client_address(environ) == "198.51.100.23"


def test_without_api_gateway_the_client_is_remote_addr():
    assert limits.client_address({"REMOTE_ADDR": "192.0.2.5"}) == "192.0.2.5"
    assert limits.client_address({"REMOTE_ADDR": "192.0.2.5", "lambda.event": {}}) == "192.0.2.5"
    assert limits.client_address({}) == "unknown"


def test_a_forged_forwarded_header_does_not_escape_the_client_limit(limited, client):
    def from_lambda(n: int) -> dict:
        event = _api_gateway_event("1.0", "198.51.100.23", f"10.0.0.{n}, 198.51.100.23")
        return {"lambda.event": event}

    for n in range(2):
        assert post_form(client, ip=f"10.0.0.{n}", email=f"t{n}@example.com",
                         environ=from_lambda(n)).status_code == 303
    assert post_form(client, ip="10.0.0.9", email="t9@example.com",
                     environ=from_lambda(9)).status_code == 429


def test_ipv6_clients_are_counted_by_their_64_network():
    assert limits.network_of("2001:db8:1:2:aaaa::1") == limits.network_of("2001:db8:1:2::ffff")
    assert limits.network_of("2001:db8:1:3::1") != limits.network_of("2001:db8:1:2::1")
    assert limits.network_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert limits.network_of("192.0.2.1") != limits.network_of("192.0.2.2")
    assert limits.network_of("not an ip") == "not an ip"


# --- when DynamoDB fails -------------------------------------------------------------


def test_a_submission_dynamodb_cannot_store_comes_back_as_typed_and_is_stored_once_later(
        app, client, table, outbox):
    from soak import faults

    data = dict(VALID, **form_fields(client))
    with faults.fast_backoff(), faults.injected(
            table.meta.client, lambda request, **_: faults.dynamodb_error(
                request, "InternalServerError", 500),
            "before-send.dynamodb.TransactWriteItems"):
        failed = client.post("/?lang=en", data=data)
    assert failed.status_code == 503
    page = failed.get_data(as_text=True)
    assert "We could not save your request just now" in page
    assert f'value="{data["submission_id"]}"' in page and 'value="traveller@example.com"' in page
    assert stored_requests(table) == [] and outbox() == []
    assert client.post("/", data=data).status_code == 303
    assert client.post("/", data=data).status_code == 303
    assert len(stored_requests(table)) == 1 and len(outbox()) == 1


def test_a_transaction_conflict_is_tried_again(app, client, table):
    from soak import faults

    conflicts = iter([True, True])

    def conflict_twice(request, **_):
        if next(conflicts, False):
            return faults._response(request, 400, {"x-amzn-RequestId": "injected"}, {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled [None, TransactionConflict, None, None]",
                "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"},
                                        {"Code": "None"}, {"Code": "None"}]})
        return None

    with faults.injected(table.meta.client, conflict_twice,
                         "before-send.dynamodb.TransactWriteItems"):
        assert post_form(client).status_code == 303
    assert len(stored_requests(table)) == 1
