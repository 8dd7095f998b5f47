"""Answers that race the job: the traveller's change wins and nothing goes out twice."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from markupsafe import escape

from tests.browser.tour import catalog
from tests.helpers import VALID, csrf_token, link, local_path, stored_requests, submit
from tests.test_journey import answer, run_job
from tracker.i18n import format_moment
from tracker.store import StoreError


def checked_request(client, runner, outbox) -> str:
    """Submit a request asked on Mon 14 Sep, run the job when its check email is due
    (Fri 18 Sep), and return the path of that email's check link."""
    submit(client, requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")
    return local_path(link(outbox()[-1], "/check/"))

def test_still_active_answer_during_a_job_lease_escalates_at_once(
        app, client, runner, outbox, clock):
    check_path = checked_request(client, runner, outbox)
    store = app.extensions["tracker"].store
    [(request_id, key)] = list(store.due(datetime(2026, 9, 22, 5, tzinfo=timezone.utc)))
    # A job run claims the reminder and is still sending it when the traveller answers.
    job_now = datetime(2026, 9, 22, 5, tzinfo=timezone.utc)
    claimed = store.claim(request_id, key, owner="slow-run", now=job_now,
                          lease_now=datetime.now(timezone.utc))
    assert claimed is not None
    clock.now = job_now
    answer(client, check_path, "still_active")
    assert "still active" in outbox()[-1]["subject"]  # escalation sent without waiting
    # The slow run finishes its reminder; its record is refused, the answer stands.
    assert not store.record(claimed, claimed.progress, owner="slow-run", what="sent:x",
                            now=job_now)
    assert store.get(request_id).progress.next_kind == "recheck"


def test_manage_page_names_every_timeline_event_in_words(app, client, outbox, table):
    submit(client, requested_on="2026-09-14")
    manage = local_path(link(outbox()[0], "/manage/"))
    [item] = [i for i in table.scan()["Items"] if i["pk"].startswith("REQ#")]
    events = ["sent:check", "sent:reminder-0-1", "sent:escalation-1", "sent:recheck-1",
              "failed:reminder-1-2", "answer:still_active", "stopped:unsubscribe",
              "suppressed:bounce", "suppressed:complaint"]
    table.update_item(Key={"pk": item["pk"]}, UpdateExpression="SET #h = list_append(#h, :e)",
                      ExpressionAttributeNames={"#h": "history"},
                      ExpressionAttributeValues={":e": [
                          {"at": "2026-09-20T08:00:00Z", "what": what} for what in events]})
    page = client.get(manage).get_data(as_text=True)
    timeline = page[page.index("<ol>"):page.index("</ol>")]
    assert timeline.count("<li>") == len(events) + 2  # plus submitted and the receipt
    for what in events:
        assert what not in timeline
    assert "could not receive them" in timeline and "reported as spam" in timeline


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_dynamodb_down_on_a_link_page_is_a_503_to_retry_not_a_500(
        app, client, outbox, monkeypatch, lang):
    submit(client, requested_on="2026-09-14")
    manage = local_path(link(outbox()[0], "/manage/"))
    store = app.extensions["tracker"].store

    def unavailable(*args, **kwargs):
        raise StoreError("get_item failed")

    monkeypatch.setattr(store, "get", unavailable)
    response = client.get(manage.split("?")[0] + f"?lang={lang}")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert ("try again in a minute" in page) is (lang == "en")


def test_an_answer_racing_a_job_write_is_retried_once_and_recorded(
        app, client, runner, outbox, clock, monkeypatch):
    check_path = checked_request(client, runner, outbox)
    store = app.extensions["tracker"].store
    real_save, calls = store.save, []

    def save_losing_the_first_race(request, progress, **kwargs):
        calls.append(request.version)
        if len(calls) == 1:
            return False  # the job recorded something between our read and our write
        return real_save(request, progress, **kwargs)

    monkeypatch.setattr(store, "save", save_losing_the_first_race)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    assert answer(client, check_path, "cancelled").status_code == 303
    assert len(calls) == 2
    assert "Remove Cellular Plan" in client.get(check_path).get_data(as_text=True)


def test_escalation_the_page_cannot_send_is_left_to_the_job_and_sent_once(
        app, client, runner, outbox, clock, wall, monkeypatch):
    check_path = checked_request(client, runner, outbox)
    store = app.extensions["tracker"].store

    def unavailable(request, **_):
        raise StoreError("the re-read before sending failed")

    monkeypatch.setattr(store, "confirm", unavailable)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    assert answer(client, check_path, "still_active").status_code == 303
    assert len(outbox()) == 2  # receipt and check only: nothing went out
    monkeypatch.undo()
    # The page's lease runs out; the next scheduled run sends the escalation, once.
    wall.advance(timedelta(seconds=app.config["LEASE_SECONDS"] + 1))
    assert run_job(runner, "2026-09-18T06:15:00Z")["sent"] == 1
    assert run_job(runner, "2026-09-18T06:30:00Z")["sent"] == 0
    assert "still active" in outbox()[-1]["subject"]


def taps(client, check_path: str, reply: str, count: int) -> list[int]:
    """Press an answer button ``count`` times on one page (a double tap re-posts it)."""
    page = client.get(check_path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    return [client.post(check_path, data={"csrf_token": token, "answer": reply}).status_code
            for _ in range(count)]


@pytest.mark.parametrize("count", [2, 3], ids=["double-tap", "triple-tap"])
@pytest.mark.parametrize("reply", ["still_active", "cancelled"])
def test_the_same_answer_tapped_again_is_recorded_once_and_escalates_at_most_once(
        app, client, runner, outbox, clock, table, count, reply):
    check_path = checked_request(client, runner, outbox)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    assert taps(client, check_path, reply, count) == [303] * count

    escalations = [m for m in outbox() if "still active" in m["subject"]]
    assert len(escalations) == (reply == "still_active")
    [item] = stored_requests(table)
    answers = [e["what"] for e in item["history"] if e["what"].startswith("answer:")]
    assert answers == [f"answer:{reply}"]
    assert run_job(runner, "2026-09-18T07:00:00Z")["sent"] == 0  # nothing left over


def test_a_second_tap_that_read_the_request_before_the_first_wrote_changes_nothing(
        app, client, runner, outbox, clock, table, monkeypatch):
    check_path = checked_request(client, runner, outbox)
    store = app.extensions["tracker"].store
    [item] = stored_requests(table)
    before = store.get(item["id"])
    clock.now = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    assert answer(client, check_path, "still_active").status_code == 303
    # The second tap's page read the request before the first tap's write landed.
    real_get, reads = store.get, []

    def stale_first(request_id):
        reads.append(request_id)
        return before if len(reads) == 1 else real_get(request_id)

    monkeypatch.setattr(store, "get", stale_first)
    assert answer(client, check_path, "still_active").status_code == 303
    assert len([m for m in outbox() if "still active" in m["subject"]]) == 1
    [item] = stored_requests(table)
    assert [e["what"] for e in item["history"]].count("answer:still_active") == 1


def test_the_question_asked_again_takes_the_same_answer_again(
        app, client, runner, outbox, clock):
    check_path = checked_request(client, runner, outbox)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    answer(client, check_path, "still_active")
    assert run_job(runner, "2026-09-23T05:00:00Z")["sent"] == 1  # the re-check
    clock.now = datetime(2026, 9, 23, 6, tzinfo=timezone.utc)
    answer(client, check_path, "still_active")
    assert len([m for m in outbox() if "still active" in m["subject"]]) == 2


def test_one_click_unsubscribe_racing_a_job_write_stops_the_emails(
        app, client, runner, outbox, table, monkeypatch):
    submit(client, requested_on="2026-09-14")
    unsubscribe = local_path(link(outbox()[0], "/unsubscribe/"))
    store = app.extensions["tracker"].store
    [item] = stored_requests(table)
    stale = store.get(item["id"])
    # The job records the check email between the page's read and its write.
    assert run_job(runner, "2026-09-18T05:00:00Z")["sent"] == 1
    monkeypatch.setattr(store, "get", lambda request_id: stale)

    response = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    monkeypatch.undo()
    [item] = stored_requests(table)
    assert item["status"] == "stopped" and "due_part" not in item
    assert item["history"][-1]["what"] == "stopped:unsubscribe"
    assert run_job(runner, "2026-10-30T05:00:00Z")["sent"] == 0


def manage_during_a_job_lease(app, client, runner, outbox, wall, action: str):
    """Press the manage page's ``action`` while a slow job holds the check email's lease;
    the job's record afterwards must be refused. Returns (store, claimed, request id)."""
    checked_request(client, runner, outbox)
    store = app.extensions["tracker"].store
    manage = local_path(link(outbox()[0], "/manage/"))
    job_now = datetime(2026, 9, 22, 5, tzinfo=timezone.utc)
    [(request_id, key)] = list(store.due(job_now))
    claimed = store.claim(request_id, key, owner="slow-run", now=job_now, lease_now=wall())
    page = client.get(manage).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    assert client.post(manage.split("?")[0] + "/" + action,
                       data={"csrf_token": token}).status_code == 303
    assert not store.record(claimed, claimed.progress, owner="slow-run", what="sent:x",
                            now=job_now)
    return store, claimed, request_id


def test_stop_during_a_job_lease_wins_and_the_job_records_nothing(
        app, client, runner, outbox, table, wall):
    store, claimed, request_id = manage_during_a_job_lease(
        app, client, runner, outbox, wall, "stop")
    assert store.get(request_id).progress.status == "stopped"


def test_delete_during_a_job_lease_leaves_nothing_behind(
        app, client, runner, outbox, table, wall):
    store, claimed, _ = manage_during_a_job_lease(app, client, runner, outbox, wall, "delete")
    assert not store.release(claimed, owner="slow-run")
    assert stored_requests(table) == []


def test_dynamodb_failing_while_claiming_the_escalation_is_no_error_page(
        app, client, runner, outbox, clock, monkeypatch):
    check_path = checked_request(client, runner, outbox)
    store = app.extensions["tracker"].store

    def unavailable(*args, **kwargs):
        raise StoreError("claim failed")

    monkeypatch.setattr(store, "claim", unavailable)
    clock.now = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    assert answer(client, check_path, "still_active").status_code == 303
    monkeypatch.undo()
    assert len(outbox()) == 2  # nothing went out yet: the job sends it, once
    assert run_job(runner, "2026-09-18T06:15:00Z")["sent"] == 1
    assert run_job(runner, "2026-09-18T06:30:00Z")["sent"] == 0
    assert "still active" in outbox()[-1]["subject"]


@pytest.mark.parametrize("history, reply, repeat", [
    (["sent:check", "answer:not_sure"], "not_sure", True),  # any answer value
    (["sent:check", "answer:not_sure"], "still_active", False),
    (["sent:check", "answer:still_active", "sent:escalation-1"], "still_active", True),
    (["answer:still_active", "sent:escalation-1", "sent:recheck-1"], "still_active", False),
    (["answer:not_sure", "sent:ask_again-1"], "not_sure", False),  # any question kind
    (["sent:receipt", "sent:check"], "cancelled", False),
], ids=["same", "other", "after-its-escalation", "after-a-recheck", "new-kind", "first"])
def test_an_answer_repeats_only_the_same_reply_to_the_question_still_asked(
        history, reply, repeat):
    from tracker.model import Event, Request
    from tracker.tracking import repeats_last_answer

    at = datetime(2026, 9, 18, 6, tzinfo=timezone.utc)
    request = Request(id="r", email="a@example.com", operator="nar", phone_last4="4567",
                      channel="call", requested_on=at.date(), timezone="Asia/Baku",
                      lang="en", created_at=at,
                      history=tuple(Event(at, what) for what in history))
    assert repeats_last_answer(request, reply) is repeat


# ── Answers before the first check email ─────────────────────────────────────────────

def _receipt_check_path(client, outbox, lang: str = "en", **changes) -> str:
    """Submit a request asked on Mon 14 Sep, in ``lang``; the receipt's check link."""
    data = dict(VALID, csrf_token=csrf_token(client, f"/?lang={lang}"), **changes)
    assert client.post(f"/?lang={lang}", data=data).status_code == 303
    receipt = outbox()[-1]
    assert "/check/" not in receipt["subject"]
    return local_path(link(receipt, "/check/"))


def test_the_receipt_and_the_confirmation_page_link_the_check_page(client, outbox):
    response = submit(client, requested_on="2026-09-14")
    [receipt] = outbox()
    check = link(receipt, "/check/")
    assert "Already have proof the number is terminated? Tell us now: " + check in receipt["text"]
    assert f'href="{escape(check)}"' in receipt["html"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'<a href="[^"]*/check/[^"]*">Already have proof the number is '
                     r"terminated\? Tell us now</a>", page)
    assert client.get(local_path(check)).status_code == 200


def test_the_not_yet_steps_and_the_reseller_email_offer_no_early_answer(client, outbox):
    submit(client, channel="not_yet")
    submit(client, email="r@example.com", operator="reseller", phone="", channel="",
           plan_ends_on="2026-10-02")
    assert [m for m in outbox() if "Already have proof" in m["text"]] == []


@pytest.mark.parametrize("lang", ["en", "zh", "az", "ru"])
def test_before_the_first_check_the_page_offers_only_the_cancelled_answer(
        client, outbox, lang):
    t = catalog(lang).gettext
    page = client.get(_receipt_check_path(client, outbox, lang)).get_data(as_text=True)
    assert 'value="cancelled"' in page and t("Yes, it is terminated") in page
    assert 'value="still_active"' not in page and 'value="not_sure"' not in page
    assert t("No, it still works") not in page and t("I am not sure yet") not in page
    assert 'name="evidence" value="written"' in page  # the evidence ticks stay
    when = format_moment(datetime(2026, 9, 18, 5, tzinfo=timezone.utc), "Asia/Baku", lang)
    notice = t("Already have proof the number is terminated? Tell us now. Until the operator "
               "has processed your request, a number that still works is expected: then "
               "wait, we will email you on %(when)s to ask anyway.") % {"when": when}
    assert str(escape(notice)) in page


@pytest.mark.parametrize(("reply", "lang"), [("still_active", "en"), ("not_sure", "ru")])
def test_a_live_line_answer_before_the_first_check_is_a_400_and_changes_nothing(
        client, outbox, table, reply, lang):
    check_path = _receipt_check_path(client, outbox, lang)
    [before] = stored_requests(table)
    sent = len(outbox())
    response = answer(client, check_path, reply)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert catalog(lang).gettext("Nothing was recorded: it is too early for that answer. The "
                                 "operator may still be processing your request, so a number "
                                 "that still works is expected until then. We will email you "
                                 "on %(when)s to ask. If you already have proof it is "
                                 "terminated, tell us below.").split(":")[0] in page
    assert stored_requests(table) == [before]  # nothing recorded
    assert not [i for i in table.scan()["Items"] if i["pk"].startswith("STAT")]
    assert len(outbox()) == sent  # no escalation email
    assert before["next_kind"] == "check"


def test_after_the_first_check_email_every_answer_is_offered_again(
        client, runner, outbox):
    check_path = checked_request(client, runner, outbox)
    page = client.get(check_path).get_data(as_text=True)
    assert 'value="still_active"' in page and 'value="not_sure"' in page
    assert "Already have proof" not in page


def test_an_early_cancelled_answer_verifies_the_request_and_no_check_follows(
        client, runner, outbox, table, clock):
    check_path = _receipt_check_path(client, outbox)
    clock.now = datetime(2026, 9, 15, 8, tzinfo=timezone.utc)  # Tue: one working day on
    token = csrf_token(client, check_path)
    for _ in range(2):  # a double press: the second finds the request verified
        response = client.post(check_path, data={"csrf_token": token, "answer": "cancelled",
                                                 "evidence": "written"})
        assert response.status_code == 303
    [item] = stored_requests(table)
    assert item["status"] == "verified" and not item.get("next_kind")
    assert [e["what"] for e in item["history"]].count("answer:cancelled:written") == 1
    sent = len(outbox())
    run_job(runner, "2026-09-18T05:00:00Z")  # when the check would have gone
    assert len(outbox()) == sent
