"""Guidance a traveller can act on from anywhere, and a check that proves something (issue 10)."""

import html
import re
from datetime import date, datetime, timezone

import pytest

from tests.helpers import csrf_token, link, local_path, stored_requests, submit
from tests.test_journey import run_job
from tracker import i18n, policy
from tracker.policy import Progress, Rules

UTC = timezone.utc


def post_answer(client, check_path, reply, evidence=()):
    token = csrf_token(client, check_path)
    return client.post(check_path, data={"csrf_token": token, "answer": reply,
                                         "evidence": list(evidence)})


def checked(client, runner, outbox, **changes) -> str:
    submit(client, requested_on="2026-09-14", **changes)
    run_job(runner, "2026-09-18T05:00:00Z")
    return local_path(link(outbox()[-1], "/check/"))


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# ------------------------------------------------------------------ 6: not_yet

def test_not_yet_sends_the_steps_not_a_you_asked_receipt_and_starts_no_check(
        client, runner, outbox, table, clock):
    done = client.get(submit(client, channel="not_yet").headers["Location"])
    [steps] = outbox()
    assert "You asked" not in steps["text"] and "tracking your eSIM" not in steps["subject"]
    assert "How to ask" in steps["subject"] and "I have asked" in steps["text"]
    [item] = stored_requests(table)
    assert item["status"] == "not_asked" and item["next_kind"] == "nudge"
    assert "start tracking" in done.get_data(as_text=True)
    # The reminder to ask goes out the next working day (Mon 14 Sep -> Tue 15 Sep), once.
    assert run_job(runner, "2026-09-15T04:00:00Z")["sent"] == 0
    assert run_job(runner, "2026-09-15T08:30:00Z")["sent"] == 1
    assert "Reminder: ask" in outbox()[-1]["subject"]
    assert run_job(runner, "2026-10-30T08:00:00Z")["sent"] == 0  # no check: never asked


def test_not_yet_starts_the_check_timer_only_when_the_traveller_says_they_asked(
        client, runner, outbox, table, clock):
    submit(client, channel="not_yet")
    check_path = local_path(link(outbox()[-1], "/check/"))
    clock.now = datetime(2026, 9, 21, 8, tzinfo=UTC)  # they ask a week later, Mon 21 Sep
    token = csrf_token(client, check_path)
    asked = client.post(check_path.replace("/check/", "/asked/"), data={"csrf_token": token})
    assert asked.status_code == 303
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    # Before that check, the page takes only proof that the number is already terminated.
    assert "we will email you on Friday, September 25, 2026" in page
    assert 'value="still_active"' not in page
    [item] = stored_requests(table)
    assert item["status"] == "open" and item["next_kind"] == "check"
    assert item["requested_on"] == "2026-09-21" and item["history"][-1]["what"] == "asked"
    assert run_job(runner, "2026-09-24T08:00:00Z")["sent"] == 0  # still the window
    assert run_job(runner, "2026-09-25T05:00:00Z")["sent"] == 1  # Fri 25 Sep, 09:00 Baku
    assert "check" in outbox()[-1]["subject"].lower()


# ------------------------------------------------------------------ 1: the check

def test_the_check_never_presents_no_service_alone_as_proof(client, runner, outbox):
    check_path = checked(client, runner, outbox)
    page = text_of(client.get(check_path).get_data(as_text=True))
    email = outbox()[-1]["text"]
    for where in (page, email, text_of(outbox()[-1]["html"])):
        sentences = re.split(r"(?<=[.:])\s", where)
        mentions = [s for s in sentences if "No service" in s]
        assert all("proves nothing" in s for s in mentions), mentions
        assert "written confirmation" in where and "SIM not valid" in where


def test_a_cancelled_answer_records_its_evidence(client, runner, outbox, table):
    check_path = checked(client, runner, outbox)
    post_answer(client, check_path, "cancelled", evidence=["written", "bill", "bogus"])
    [item] = stored_requests(table)
    assert item["status"] == "verified" and item["evidence"] == ["bill", "written"]
    assert item["history"][-1]["what"] == "answer:cancelled:bill+written"
    manage = client.get(local_path(link(outbox()[-1], "/manage/"))).get_data(as_text=True)
    assert "written confirmation" in manage and "no new charges" in manage


def test_not_sure_asks_again_after_two_working_days(client, runner, outbox, table, clock):
    check_path = checked(client, runner, outbox)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    post_answer(client, check_path, "not_sure")
    page = client.get(check_path).get_data(as_text=True)
    assert "how to be sure" in page and "We will ask you again on" in page
    [item] = stored_requests(table)
    assert item["status"] == "open" and item["next_kind"] == "ask_again"
    assert run_job(runner, "2026-09-21T08:00:00Z")["sent"] == 0  # Mon: one working day
    assert run_job(runner, "2026-09-22T06:00:00Z")["sent"] == 1  # Tue: two
    assert "check again" in outbox()[-1]["subject"]


def test_not_sure_is_bounded_like_reminders():
    progress = Progress(status=policy.OPEN, next_kind=policy.REMINDER)
    now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    for _ in range(Rules().max_reminders):
        progress = policy.after_answer(progress, "not_sure", now=now)
        assert progress.next_kind == policy.ASK_AGAIN
    keys = progress.next_key
    progress = policy.after_answer(progress, "not_sure", now=now)
    assert progress.status == policy.NO_ANSWER and progress.next_kind is None
    assert keys == "ask_again-0-2"


# ------------------------------------------------------------------ 2, 3, 4, 7: the steps

def test_azercell_steps_ask_for_permanent_termination_and_link_the_written_request(
        client, outbox):
    page = client.get(submit(client, channel="call").headers["Location"]).get_data(
        as_text=True)
    assert "terminated permanently" in page and "may only suspend" in page
    assert 'href="/write/azercell?lang=en"' in page
    receipt = outbox()[-1]
    assert "https://tracker.example/dev/write/azercell?lang=en" in receipt["text"]
    assert "another number" in receipt["text"]  # move accounts that text codes, first


def test_the_written_request_is_drafted_in_azerbaijani_and_english_and_never_stored(
        client, table):
    page = client.get("/write/azercell?lang=en").get_data(as_text=True)
    assert "Nothing you type here is stored" in page
    before = table.scan()["Items"]
    token = csrf_token(client, "/write/azercell?lang=en")
    drafted = client.post("/write/azercell?lang=en", data={
        "csrf_token": token, "phone": "050 123 45 67", "full_name": "Li Wei"})
    text = html.unescape(drafted.get_data(as_text=True))
    assert drafted.status_code == 200 and drafted.headers["Cache-Control"] == "no-store"
    assert "həmişəlik ləğv" in text and "terminate the number +994 50 123 45 67 permanently" in text
    assert "mailto:customercare@azercell.com?subject=" in text and "Li Wei" in text
    assert table.scan()["Items"] == before


def test_the_written_request_page_exists_only_for_a_sourced_written_route(client):
    assert client.get("/write/bakcell").status_code == 404
    assert client.get("/write/nobody").status_code == 404


def test_a_bakcell_traveller_abroad_is_not_told_to_call(client):
    page = client.get(submit(client, operator="bakcell", phone="055 123 45 67",
                             channel="not_yet").headers["Location"]).get_data(as_text=True)
    abroad = page.split('id="abroad-title"')[1].split("</section>")[0]
    assert "cannot call 555" in abroad and "tel:" not in abroad
    assert "no confirmed way to terminate a number from abroad" in abroad


# ------------------------------------------------------------------ 5: reseller

# The reseller journey itself (no number asked or stored, one reminder on the plan's end
# day) is in test_journey.py, which runs it on both DynamoDB engines.


def test_the_form_offers_the_reseller_choice_and_says_no_number_is_needed(client):
    form = client.get("/").get_data(as_text=True)
    assert 'value="reseller"' in form and "Not needed for a reseller eSIM" in form


# ------------------------------------------------------------------ 8: once per section

UNCONFIRMED = {"en": "Unconfirmed", "zh": "未经证实", "az": "Yoxlanılmayıb", "ru": "Не проверено"}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
@pytest.mark.parametrize("operator,phone", [("azercell", "050 123 45 67"),
                                            ("bakcell", "055 123 45 67"),
                                            ("nar", "070 123 45 67")])
def test_unconfirmed_is_said_at_most_once_per_section(client, operator, phone, lang):
    page = client.get(submit(client, operator=operator, phone=phone, channel="not_yet")
                      .headers["Location"].replace("lang=en", f"lang={lang}"))
    text = page.get_data(as_text=True)
    sections = re.split(r"<h2|<footer", text)
    assert len(sections) > 5
    for section in sections:
        assert section.count(UNCONFIRMED[lang]) <= 1, section[:200]
        if '<span class="unchecked">†</span>' in section:
            assert section.count(UNCONFIRMED[lang]) == 1, section[:200]
    assert "<li>An Azercell customer-service office, with your passport: " not in text


def test_a_browser_reporting_utc_reads_utc_not_an_unknown_region(client):
    page = client.get(submit(client, timezone="UTC").headers["Location"].replace(
        "lang=en", "lang=zh")).get_data(as_text=True)
    assert "未知地区" not in page and "（UTC）" in page
    assert i18n.format_moment(datetime(2026, 9, 18, 5, tzinfo=UTC), "Etc/UTC", "en") == (
        "Friday, September 18, 2026, 5:00\u202fAM (UTC)")


def test_the_office_contact_is_not_a_label_with_nothing_after_it(client):
    page = client.get(submit(client).headers["Location"]).get_data(as_text=True)
    office = re.search(r"<li>An Azercell customer-service office, with your passport(.{0,3})",
                       page).group(1)
    assert not office.startswith(":")


# ------------------------------------------------------------------ every new email, every language

NEW_EMAILS = {
    # template: (status, pending kind, operator, a sentence of its body)
    "howto": (policy.NOT_ASKED, policy.RECEIPT, "azercell",
              "You have not asked %(operator)s yet, so we are not tracking anything. "
              "Here is how to ask."),
    "reseller": (policy.GUIDED, policy.RECEIPT, "reseller",
                 "The plan ends by itself when its days or data run out."),
    "nudge": (policy.NOT_ASKED, policy.NUDGE, "bakcell",
              "You asked us how to terminate your %(operator)s number. Have you asked them "
              "yet? Until you do, the number stays yours and can be charged."),
    "ask_again": (policy.OPEN, policy.ASK_AGAIN, "nar",
                  "Last time you were not sure. The strongest evidence is the operator's "
                  "written confirmation; here is what counts:"),
    "delete_profile": (policy.GUIDED, policy.DELETE_PROFILE, "reseller",
                       "Your reseller eSIM plan ends today. Once you no longer need it, "
                       "delete its profile, and only this one:"),
}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
@pytest.mark.parametrize("template", list(NEW_EMAILS))
def test_every_new_email_speaks_the_requests_language(app, template, lang):
    from tests.browser.tour import catalog
    from tracker import emails
    from tracker.model import Request

    status, kind, operator, body = NEW_EMAILS[template]
    request = Request(
        id="r1", email="traveller@example.com", operator=operator,
        phone_last4="" if operator == "reseller" else "4567",
        channel="none" if operator == "reseller" else "not_yet",
        requested_on=date(2026, 9, 14), timezone="Asia/Baku", lang=lang,
        created_at=datetime(2026, 9, 14, 8, tzinfo=UTC), plan_ends_on=date(2026, 10, 2),
        progress=Progress(status=status, next_kind=kind))
    with app.test_request_context("/?lang=en"):
        assert emails.template_for(request) == template
        message = emails.compose(request)
    t = catalog(lang).gettext
    name = {"reseller": ""}.get(operator, operator.capitalize())
    sentence = t(body) % {"operator": name} if "%(operator)s" in body else t(body)
    assert message.subject == t(str(emails.SUBJECTS[template]))
    assert sentence in message.text and html.escape(sentence, quote=False) in message.html
    assert "You asked" not in message.text or lang != "en" or template != "howto"
    if lang != "en":
        assert body.split(".")[0] not in message.text


def test_the_check_page_says_unconfirmed_once(client, runner, outbox):
    page = client.get(checked(client, runner, outbox)).get_data(as_text=True)
    for section in re.split(r"<h2|<footer", page):
        assert section.count("Unconfirmed") <= 1


def test_a_bakcell_traveller_told_whom_to_contact_also_reads_that_calling_fails_abroad(
        client, runner, outbox, clock):
    check_path = checked(client, runner, outbox, operator="bakcell", phone="055 123 45 67")
    clock.now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    post_answer(client, check_path, "still_active")
    escalation = outbox()[-1]["text"]
    assert "Already left Azerbaijan?" in escalation and "cannot call 555" in escalation
    page = client.get(check_path).get_data(as_text=True)
    assert 'id="abroad-title"' in page and "cannot call 555" in page


def test_the_written_request_page_explains_a_bad_number_in_the_page_language(client, table):
    token = csrf_token(client, "/write/azercell?lang=ru")
    page = client.post("/write/azercell?lang=ru", data={
        "csrf_token": token, "phone": "12345", "full_name": ""})
    text = page.get_data(as_text=True)
    assert page.status_code == 400 and "Введите имя так, как оно написано в паспорте." in text
    assert stored_requests(table) == []


# ------------------------------------------------------------------ issue 18: proof

@pytest.mark.parametrize("evidence", [(), ("bill",), ("call", "phone", "bill")],
                         ids=["none", "bill", "all-but-written"])
def test_cancelled_without_proof_asks_again_bounded_like_reminders(evidence):
    now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    progress = Progress(status=policy.OPEN, next_kind=policy.REMINDER)
    for round_ in range(Rules().max_reminders):
        progress = policy.after_answer(progress, "cancelled", now=now, evidence=evidence)
        assert progress.status == policy.OPEN and progress.next_kind == policy.ASK_AGAIN
        assert progress.reminders == round_ + 1
    progress = policy.after_answer(progress, "cancelled", now=now, evidence=evidence)
    assert progress.status == policy.NO_ANSWER and progress.closed


def test_cancelled_with_the_written_confirmation_verifies():
    now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    progress = Progress(status=policy.OPEN, next_kind=policy.REMINDER)
    done = policy.after_answer(progress, "cancelled", now=now, evidence=("bill", "written"))
    assert done.status == policy.VERIFIED and done.closed


def test_cancelled_without_proof_before_the_first_check_keeps_the_check_coming():
    now = datetime(2026, 9, 15, 6, tzinfo=UTC)
    due = datetime(2026, 9, 18, 5, tzinfo=UTC)
    waiting = Progress(status=policy.OPEN, next_kind=policy.CHECK, due_at=due)
    assert policy.after_answer(waiting, "cancelled", now=now, evidence=("bill",)) == waiting


def test_a_cancelled_answer_without_proof_is_recorded_and_leads_to_the_not_sure_path(
        client, runner, outbox, table, clock):
    check_path = checked(client, runner, outbox)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    assert post_answer(client, check_path, "cancelled", evidence=["bill"]).status_code == 303
    [item] = stored_requests(table)
    assert item["status"] == "open" and item["next_kind"] == "ask_again"
    assert item["evidence"] == ["bill"]
    assert item["history"][-1]["what"] == "answer:cancelled:bill"
    page = text_of(client.get(check_path).get_data(as_text=True))
    assert "We will ask you again on" in page
    # The written confirmation arrives: the same button, now with proof, is not a repeat.
    assert post_answer(client, check_path, "cancelled", evidence=["written"]).status_code == 303
    [item] = stored_requests(table)
    assert item["status"] == "verified" and item["evidence"] == ["written"]


def test_a_cancelled_answer_with_nothing_ticked_is_not_a_confirmation(
        client, runner, outbox, table, clock):
    check_path = checked(client, runner, outbox)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=UTC)
    post_answer(client, check_path, "cancelled")
    [item] = stored_requests(table)
    assert item["status"] == "open" and item["next_kind"] == "ask_again"
    assert item["history"][-1]["what"] == "answer:cancelled"
    assert run_job(runner, "2026-09-22T06:00:00Z")["sent"] == 1  # asked again
    assert "check again" in outbox()[-1]["subject"]
