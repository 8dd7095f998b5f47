"""Answers that race the job: the traveller's change wins and nothing goes out twice."""

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import link, local_path, stored_requests, submit
from tests.test_journey import answer, run_job
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

    def unavailable(address):
        raise StoreError("get_item of suppression failed")

    monkeypatch.setattr(store, "suppression", unavailable)
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
