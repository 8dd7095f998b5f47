"""The request form: every bad input gets its message next to its field, and is kept."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import VALID, form_fields, stored_requests, submit

BAD_INPUTS = [
    ("email", "", "Enter your email address."),
    ("email", "not-an-email", "Enter an email address like name@example.com."),
    ("email", "traveller@", "Enter an email address like name@example.com."),
    ("email", "a" * 250 + "@example.com", "Field cannot be longer than 254 characters."),
    ("operator", None, "Choose the operator."),
    ("operator", "naxtel", "Not a valid choice."),
    ("phone", "", "phone number."),
    ("phone", "12345", "Enter an Azerbaijani mobile number"),
    ("phone", "+7 912 345 67 89", "Enter an Azerbaijani mobile number"),
    ("phone", "+994 12 345 67 89", "Enter an Azerbaijani mobile number"),  # a Baku landline
    ("phone", "call me", "Enter an Azerbaijani mobile number"),
    ("channel", None, "Choose how you asked."),
    ("channel", "fax", "Choose how you asked."),
    ("requested_on", "2026-09-15", "This date is in the future."),
    ("requested_on", "2026-07-15", "more than 60 days ago"),
    ("requested_on", "2026-13-45", "Not a valid date value."),
    ("consent", None, "Tick the box to let us email you."),
    ("website", "http://spam.example", "Leave this field empty."),
]


@pytest.mark.parametrize("field,value,message", BAD_INPUTS,
                         ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_INPUTS])
def test_bad_input_is_rejected_next_to_its_field_and_the_rest_kept(
        client, table, outbox, field, value, message):
    response = submit(client, **{field: value})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    # The message is linked from the summary and sits next to its field.
    assert f'href="#{field}"' in page
    assert re.search(rf'id="{field}-error"[^>]*>[^<]*{re.escape(message[:20])}', page)
    # Everything else the traveller typed is still there.
    if field != "email":
        assert 'value="traveller@example.com"' in page
    if field != "phone":
        assert 'value="+994 50 123 45 67"' in page
    assert stored_requests(table) == [] and outbox() == []


def test_missing_csrf_token_re_shows_the_form_with_its_values(client, table):
    data = dict(VALID)
    response = client.post("/", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'value="traveller@example.com"' in page
    assert stored_requests(table) == []


@pytest.mark.parametrize("written", ["+994 50 123 45 67", "0501234567", "994501234567",
                                     "+994-50-123-45-67", "(050) 123 45 67"])
def test_common_writings_of_a_number_are_accepted_and_only_last_digits_kept(
        client, table, written):
    assert submit(client, phone=written).status_code == 303
    [item] = stored_requests(table)
    assert item["phone_last4"] == "4567"
    assert "50123" not in str(item) and "501234567" not in str(item)


def test_requested_on_defaults_to_today_in_baku(client, table, clock):
    from datetime import datetime, timezone

    clock.now = datetime(2026, 9, 14, 21, 30, tzinfo=timezone.utc)  # 01:30 on the 15th in Baku
    assert submit(client, requested_on="").status_code == 303
    [item] = stored_requests(table)
    assert item["requested_on"] == "2026-09-15"


def test_a_bad_timezone_falls_back_to_baku(client, table):
    assert submit(client, timezone="Mars/Olympus").status_code == 303
    assert stored_requests(table)[0]["timezone"] == "Asia/Baku"


def test_browser_timezone_is_stored(client, table):
    assert submit(client, timezone="Asia/Shanghai").status_code == 303
    assert stored_requests(table)[0]["timezone"] == "Asia/Shanghai"


def test_double_submit_creates_one_request_and_one_receipt(client, table, outbox):
    data = dict(VALID, **form_fields(client))
    first = client.post("/", data=data)
    second = client.post("/", data=data)
    assert first.status_code == second.status_code == 303
    assert len(stored_requests(table)) == 1
    assert len(outbox()) == 1
    assert client.get(second.headers["Location"]).status_code == 200


def test_refreshing_the_confirmation_page_changes_nothing(client, table, outbox):
    location = submit(client).headers["Location"]
    for _ in range(3):
        assert client.get(location).status_code == 200
    assert len(stored_requests(table)) == 1 and len(outbox()) == 1


def test_prefix_of_another_operator_gives_a_soft_hint_not_an_error(client):
    response = submit(client, operator="azercell", phone="055 123 45 67")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "usually Bakcell numbers" in page


def test_matching_prefix_gives_no_hint(client):
    page = client.get(submit(client).headers["Location"]).get_data(as_text=True)
    assert "Numbers starting like yours" not in page


@pytest.mark.parametrize("channel,expected", [
    ("store", "passport"), ("online", "Kabinetim"), ("not_yet", "customer-service office")])
def test_confirmation_page_shows_the_operators_steps_for_the_channel(client, channel, expected):
    page = client.get(submit(client, channel=channel).headers["Location"]).get_data(as_text=True)
    assert expected in page
    assert "Erase downloaded SIMs" in page and "refund" in page
    assert "change the number inside each app" in page
    assert "Back up" not in page  # codes cannot be backed up
    if channel == "not_yet":  # nothing asked yet: no check date until they say they asked
        assert "start tracking" in page and "September 18" not in page
    else:  # the first check email's date and time (Mon 14 Sep -> Fri 18 Sep, 09:00 Baku)
        assert "Friday, September 18, 2026, 9:00" in page


def test_confirmation_page_never_gives_the_police_number_as_bakcell(client):
    page = client.get(submit(client, operator="bakcell", phone="0551234567")
                      .headers["Location"]).get_data(as_text=True)
    assert "555" in page
    assert 'href="tel:102"' not in page and "police" in page


# --- the submission id: the server's, bound to the browser's session ------------------


def test_another_site_cannot_plant_a_submission_id_and_take_over_a_request(
        app, client, table, outbox):
    victim, attacker = client, app.test_client()
    # Another site's page posts the language switch into the victim's browser, with an
    # id of its choosing (and its own address); no CSRF token, as it cannot have one.
    planted = victim.post("/?lang=en", data={
        "switch_lang": "ru", "submission_id": "planted", "email": "attacker@evil.example"})
    page = planted.get_data(as_text=True)
    assert "planted" not in page and "attacker@evil.example" not in page

    # The victim sends the form as it stands; the attacker sends the id they planted.
    first = submit(victim, submission_id="planted", email="victim@example.com")
    second = submit(attacker, submission_id="planted", email="attacker@evil.example",
                    phone="055 999 88 77")
    assert first.status_code == second.status_code == 303
    assert _request_of(app, first) != _request_of(app, second)
    stored = {item["email"]: item for item in stored_requests(table)}
    assert set(stored) == {"victim@example.com", "attacker@evil.example"}
    assert sorted(m["to"] for m in outbox()) == ["attacker@evil.example", "victim@example.com"]
    # Each confirmation is about its sender's own request only.
    assert _confirmed(app, table, first) == "victim@example.com"
    assert _confirmed(app, table, second) == "attacker@evil.example"


def test_a_submission_id_copied_from_another_travellers_page_is_not_honoured(
        app, client, table):
    victim, attacker = client, app.test_client()
    victim_fields = form_fields(victim)
    assert submit(victim, submission_id=victim_fields["submission_id"]).status_code == 303
    # The id verifies only with the session it was issued to.
    stolen = submit(attacker, submission_id=victim_fields["submission_id"])
    assert stolen.status_code == 303
    assert len(stored_requests(table)) == 2
    again = submit(victim, **victim_fields)  # the victim's double click: their own request
    assert _request_of(app, stolen) != _request_of(app, again)
    assert len(stored_requests(table)) == 2


def _request_of(app, answer) -> str:
    """The id of the request a confirmation page (its redirect) is about."""
    from urllib.parse import urlsplit

    from tracker import tokens

    token = urlsplit(answer.location).path.rsplit("/", 1)[1]
    return tokens.owner(app.config["SECRET_KEY"], "manage", token)


def _confirmed(app, table, answer) -> str:
    """The address of the request a confirmation page (its redirect) is about."""
    return {i["id"]: i["email"] for i in stored_requests(table)}[_request_of(app, answer)]


def test_the_same_form_sent_again_with_a_corrected_address_is_a_new_request(
        client, table, outbox):
    data = dict(VALID, **form_fields(client), email="travler@exmaple.com")
    first = client.post("/", data=data)
    again = client.post("/", data=dict(data, email="traveller@example.com"))
    assert first.status_code == again.status_code == 303
    assert sorted(i["email"] for i in stored_requests(table)) == [
        "traveller@example.com", "travler@exmaple.com"]
    assert outbox()[-1]["to"] == "traveller@example.com"
    # And the very same content once more is the double click it always was.
    # (Its redirect's link is signed afresh, with the second it was made in: compare what
    # is stored and sent, not the links.)
    assert client.post("/", data=dict(data, email="traveller@example.com")).status_code == 303
    assert len(stored_requests(table)) == 2 and len(outbox()) == 2


def test_the_language_switch_keeps_only_what_was_typed_in_visible_fields(client):
    fields = form_fields(client)
    page = client.post("/?lang=en", data=dict(
        VALID, **fields, switch_lang="az", website="http://spam.example",
        timezone="Pacific/Auckland")).get_data(as_text=True)
    assert 'value="traveller@example.com"' in page and 'value="+994 50 123 45 67"' in page
    assert fields["submission_id"] not in page  # a fresh id, the server's own
    assert "spam.example" not in page and "Pacific/Auckland" not in page
    assert re.search(r'name="submission_id" type="hidden" value="[^"]{20,}"', page)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Pacific/Auckland"])
def test_the_travellers_own_today_is_not_in_the_future(client, table, clock, zone):
    # 01:30 on the 15th where the traveller is; still the 14th in Baku.
    clock.now = datetime(2026, 9, 15, 1, 30, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert submit(client, timezone=zone, requested_on="2026-09-15").status_code == 303
    assert stored_requests(table)[0]["requested_on"] == "2026-09-15"
    refused = submit(client, timezone=zone, requested_on="2026-09-16")
    assert refused.status_code == 400
    assert "This date is in the future." in refused.get_data(as_text=True)


@pytest.mark.parametrize("zone", ["", "Mars/Olympus"])
def test_without_a_real_zone_today_is_bakus(client, table, clock, zone):
    clock.now = datetime(2026, 9, 14, 17, 30, tzinfo=UTC)  # 21:30 in Baku
    assert submit(client, timezone=zone, requested_on="2026-09-15").status_code == 400
    assert submit(client, timezone=zone, requested_on="2026-09-14").status_code == 303
