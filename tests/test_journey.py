"""The whole journey, through the form, the job and the emails' own links."""

import re
from datetime import datetime, timezone

from tests.helpers import link, local_path, stored_requests, submit


def run_job(runner, at: str) -> dict:
    import json

    result = runner.invoke(args=["followups", "run", "--at", at], catch_exceptions=False)
    return json.loads(result.output)


def answer(client, check_path: str, reply: str, evidence=None):
    """Press an answer button; "cancelled" comes with the operator's written confirmation
    (the only proof that closes a request) unless ``evidence`` says otherwise."""
    page = client.get(check_path)
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      page.get_data(as_text=True)).group(1)
    if evidence is None:
        evidence = ["written"] if reply == "cancelled" else []
    return client.post(check_path, data={"csrf_token": token, "answer": reply,
                                         "evidence": list(evidence)})


def test_journey_to_verified(client, runner, outbox, table):
    assert submit(client, requested_on="2026-09-14").status_code == 303
    [receipt] = outbox()
    assert receipt["to"] == "traveller@example.com"

    # Mon 14 Sep: Tue 15, Wed 16, Thu 17 are the window; the check goes out on Fri 18.
    assert run_job(runner, "2026-09-17T15:00:00Z")["sent"] == 0
    assert run_job(runner, "2026-09-18T05:00:00Z")["sent"] == 1
    check = outbox()[-1]
    assert "check" in check["subject"].lower()
    check_path = local_path(link(check, "/check/"))

    page = client.get(check_path).get_data(as_text=True)
    assert "SIM not valid" in page and "No new charges" in page and "proves nothing" in page
    assert len(outbox()) == 2  # GET changed nothing and sent nothing

    response = answer(client, check_path, "cancelled")
    assert response.status_code == 303
    page = client.get(check_path).get_data(as_text=True)
    assert "you told us the number is terminated" in page and "Remove Cellular Plan" in page
    assert "Erase downloaded SIMs" in page

    assert run_job(runner, "2026-09-30T08:00:00Z")["sent"] == 0
    [item] = stored_requests(table)
    assert item["status"] == "verified" and "expires" in item
    assert "501234567" not in str(item) and item["phone_last4"] == "4567"


def test_journey_still_active_escalates_and_rechecks(client, runner, outbox, clock):
    submit(client, operator="bakcell", phone="055 123 45 67", requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")
    check_path = local_path(link(outbox()[-1], "/check/"))
    clock.now = datetime(2026, 9, 18, 6, 0, tzinfo=timezone.utc)

    answer(client, check_path, "still_active")
    escalation = outbox()[-1]
    assert "still active" in escalation["subject"]
    assert "555" in escalation["text"] and "102" not in escalation["text"]
    page = client.get(check_path).get_data(as_text=True)
    assert "555" in page

    # The re-check comes two working days later (Fri 18 -> Tue 22).
    assert run_job(runner, "2026-09-21T15:00:00Z")["sent"] == 0
    assert run_job(runner, "2026-09-22T06:00:00Z")["sent"] == 1
    recheck = outbox()[-1]
    assert "again" in recheck["subject"]
    clock.now = datetime(2026, 9, 22, 7, 0, tzinfo=timezone.utc)
    answer(client, local_path(link(recheck, "/check/")), "cancelled")
    assert "you told us the number is terminated" in client.get(check_path).get_data(
        as_text=True)


def test_no_answer_gets_two_reminders_then_nothing(client, runner, outbox):
    submit(client, requested_on="2026-09-14")
    sent = [run_job(runner, at)["sent"] for at in (
        "2026-09-18T05:00:00Z", "2026-09-22T05:00:00Z", "2026-09-24T05:00:00Z",
        "2026-09-28T05:00:00Z", "2026-10-30T05:00:00Z")]
    assert sent == [1, 1, 1, 0, 0]
    subjects = [m["subject"] for m in outbox()]
    assert sum("Reminder" in s for s in subjects) == 2


def test_every_email_is_multipart_with_absolute_links_and_one_click_unsubscribe(
        client, runner, outbox):
    submit(client, requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")
    for message in outbox():
        assert message["text"] and message["html"]
        for url in re.findall(r'href="(http[^"]+)"', message["html"]):
            assert url.startswith("https://tracker.example/dev/")
        unsubscribe = message["headers"]["List-Unsubscribe"]
        assert re.fullmatch(r"<https://tracker\.example/dev/unsubscribe/[^>]+>", unsubscribe)
        assert message["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_one_click_unsubscribe_stops_all_further_email(client, runner, outbox):
    submit(client, requested_on="2026-09-14")
    url = outbox()[0]["headers"]["List-Unsubscribe"].strip("<>")
    path = local_path(url)
    assert client.get(path).status_code == 200  # a link scanner's GET does nothing
    assert run_job(runner, "2026-09-18T05:00:00Z")["sent"] == 1
    # RFC 8058: the provider POSTs with no cookie and no CSRF token.
    fresh = client.application.test_client()
    assert fresh.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert run_job(runner, "2026-09-30T05:00:00Z")["sent"] == 0


def test_manage_page_shows_timeline_and_deletes_now(client, outbox, table):
    submit(client, requested_on="2026-09-14")
    manage = local_path(link(outbox()[0], "/manage/"))
    page = client.get(manage).get_data(as_text=True)
    assert "Request recorded" in page and "Receipt sent" in page and "4567" in page
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    path, _, query = manage.partition("?")
    response = client.post(f"{path}/delete?{query}", data={"csrf_token": token})
    assert response.status_code == 303
    assert stored_requests(table) == []
    assert client.get(manage).status_code == 404


def test_a_reseller_esim_asks_for_no_number_and_reminds_once_on_the_plan_end(
        client, runner, outbox, table):
    response = submit(client, operator="reseller", phone=None, channel=None,
                      plan_ends_on="2026-10-02")
    assert response.status_code == 303
    [item] = stored_requests(table)
    # Nothing the traveller did not give is stored, not even as "" (which DynamoDB Local,
    # stricter than moto, refuses).
    assert "" not in item.values() and "phone_last4" not in item
    assert item["status"] == "guided" and item["next_kind"] == "delete_profile"
    [guide] = outbox()
    assert "refund" in guide["text"].lower() and "ending in" not in guide["text"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "nothing to cancel" in page and "Delete eSIM" in page
    assert client.get(local_path(link(guide, "/manage/"))).status_code == 200
    assert run_job(runner, "2026-10-01T08:00:00Z")["sent"] == 0
    assert run_job(runner, "2026-10-02T05:00:00Z")["sent"] == 1
    assert "delete the profile" in outbox()[-1]["subject"]
    assert run_job(runner, "2026-12-30T08:00:00Z")["sent"] == 0
