"""Answers that race the job: the traveller's change wins and nothing goes out twice."""

from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import link, local_path, submit
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
