"""The follow-up job: concurrent runs, replays, Lambda time, failures of one item."""

import copy
import importlib
import threading
from datetime import timedelta

import pytest

from handlers import followup
from soak import faults
from tests.conftest import load_event
from tests.helpers import local_path, stored_requests, submit
from tests.jobs import NOW, FakeContext, address, own_clients, seed_due, sends_per_address
from tracker import followups


@pytest.fixture
def lambda_app(app, monkeypatch):
    """Make the handlers' module-level app the test's app (its secret, its table)."""
    monkeypatch.setattr(importlib.import_module("app"), "app", app)
    return app


def run_job(app, postman=None, now=NOW, **kwargs) -> dict:
    with app.app_context():
        return followups.run(postman or app.extensions["tracker"], now=now, **kwargs)


def test_two_concurrent_runs_over_200_due_requests_send_each_email_once(
        app, postman, outbox):
    seed_due(postman.store, 200)
    results = []
    start = threading.Barrier(2)

    def one_run():
        mine = own_clients(postman)  # boto3 resources must not be shared by threads
        start.wait()
        results.append(run_job(app, mine))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent = sends_per_address(outbox)
    assert len(sent) == 200 and set(sent.values()) == {1}
    assert sum(r["sent"] for r in results) == 200
    assert all(r["sent"] > 0 for r in results)  # both really worked the same queue


def test_replayed_scheduled_event_sends_nothing_twice(lambda_app, postman, outbox):
    seed_due(postman.store, 5)
    event = load_event("scheduled_event.json")

    first = followup.run(event, None)
    replay = followup.run(copy.deepcopy(event), None)

    assert first["sent"] == 5 and replay["sent"] == 0
    assert set(sends_per_address(outbox).values()) == {1}


def test_event_time_is_the_jobs_now(lambda_app, postman, outbox):
    seed_due(postman.store, 1)
    early = dict(load_event("scheduled_event.json"), time="2026-09-18T03:00:00Z")
    assert followup.run(early, None)["sent"] == 0  # due at 04:00 UTC, not yet
    assert followup.run(load_event("scheduled_event.json"), None)["sent"] == 1


def test_run_leaves_work_for_the_next_when_lambda_time_runs_low(lambda_app, postman, outbox):
    seed_due(postman.store, 10)
    event = load_event("scheduled_event.json")
    reserve = lambda_app.config["RESERVE_MILLIS"]

    # Enough time for four items, then below the reserve: each item looks twice (before
    # it starts, and before its send that it can still send and record).
    first = followup.run(event, FakeContext(reserve + 7500, step=1000))
    assert first["sent"] == 4 and first["stopped_early"] is True
    assert len(outbox()) == 4

    second = followup.run(event, FakeContext(900_000))
    assert second["sent"] == 6 and second["stopped_early"] is False
    sent = sends_per_address(outbox)
    assert len(sent) == 10 and set(sent.values()) == {1}


class FailFor:
    """A mailer that fails for one address and sends everything else."""

    def __init__(self, mailer, bad_address, error):
        self.mailer, self.bad_address, self.error = mailer, bad_address, error

    def send_email(self, *, from_address, to_address, message):
        if to_address == self.bad_address:
            raise self.error
        return self.mailer.send_email(from_address=from_address, to_address=to_address,
                                      message=message)


def test_one_failing_item_never_stops_the_others(app, postman, outbox, table):
    import dataclasses

    seed_due(postman.store, 5)
    broken = dataclasses.replace(
        postman, mailer=FailFor(postman.mailer, address(2), RuntimeError("boom")))

    result = run_job(app, broken)

    assert result["sent"] == 4 and result["retry"] == 1
    assert address(2) not in sends_per_address(outbox)
    item = table.get_item(Key={"pk": "REQ#seed00002"})["Item"]
    assert item["next_kind"] == "check" and item["attempts"] == 1 and "lease_owner" not in item
    assert run_job(app)["sent"] == 0  # it backs off: not again at once …
    assert run_job(app, now=NOW + timedelta(minutes=30))["sent"] == 1  # … but soon
    assert sends_per_address(outbox)[address(2)] == 1


@pytest.mark.parametrize("fault", [
    lambda r: faults.ses_error(r, "TooManyRequestsException", 429),
    lambda r: faults.ses_error(r, "InternalFailure", 500),
    faults.connection_error,
], ids=["throttled", "server-error", "connection-error"])
def test_receipt_is_sent_by_the_job_when_ses_fails_during_submit(
        client, app, ses_client, table, outbox, clock, fault):
    with faults.injected(ses_client, lambda request, **_: fault(request),
                         "before-send.sesv2.SendEmail"):
        assert submit(client).status_code == 303
    assert outbox() == []
    [item] = stored_requests(table)
    assert item["next_kind"] == "receipt" and item["status"] == "open"

    later = clock.now + timedelta(minutes=30)  # past any backoff
    assert run_job(app, now=later)["sent"] == 1
    assert run_job(app, now=later)["sent"] == 0
    [receipt] = outbox()
    assert receipt["to"] == "traveller@example.com" and "tracking" in receipt["subject"]


# --- The claim-to-send race ------------------------------------------------------------

def unsubscribe_now(client, message) -> None:
    """The traveller's mail provider POSTs the email's one-click unsubscribe URL."""
    [url] = [value[1:-1] for name, value in message.headers if name == "List-Unsubscribe"]
    assert client.post(local_path(url)).status_code == 200


def answer_cancelled_now(app, postman, request_id) -> None:
    """The traveller confirms, with the operator's written confirmation."""
    from tracker import tracking

    found = postman.store.get(request_id)
    tracking.answer(postman, found, "cancelled", now=NOW, evidence=["written"])


@pytest.mark.parametrize("traveller", ["unsubscribe", "answer", "delete"])
def test_a_traveller_acting_between_the_claim_and_the_send_gets_no_email(
        app, client, postman, table, outbox, traveller):
    """The job has claimed the email and is composing it when the traveller acts."""
    import dataclasses

    [request_id] = seed_due(postman.store, 1)

    def compose_while_the_traveller_acts(request):
        message = postman.compose(request)
        if traveller == "unsubscribe":
            unsubscribe_now(client, message)
        elif traveller == "answer":
            answer_cancelled_now(app, postman, request_id)
        else:
            postman.store.delete(request_id)
        return message

    racing = dataclasses.replace(postman, compose=compose_while_the_traveller_acts)
    result = run_job(app, racing)

    assert outbox() == []
    assert result["sent"] == 0 and result["changed"] == 1 and result["errors"] == 0
    if traveller != "delete":
        stored = table.get_item(Key={"pk": f"REQ#{request_id}"})["Item"]
        assert not any(e["what"] == "sent:check" for e in stored["history"])
        assert "lease_owner" not in stored
    assert run_job(app, now=NOW + timedelta(hours=1))["sent"] == 0


def test_an_unsubscribe_after_the_last_read_still_gets_that_one_email(
        app, client, postman, table, outbox):
    """The window that remains: between the re-read and SES accepting the email."""
    import dataclasses

    [request_id] = seed_due(postman.store, 1)

    class UnsubscribeThenSend:
        def send_email(self, *, message, **email):
            unsubscribe_now(client, message)
            return postman.mailer.send_email(message=message, **email)

    result = run_job(app, dataclasses.replace(postman, mailer=UnsubscribeThenSend()))

    assert result["sent"] == 1 and len(outbox()) == 1
    stored = table.get_item(Key={"pk": f"REQ#{request_id}"})["Item"]
    assert stored["status"] == "stopped"  # the unsubscribe stands; nothing more is sent
    assert run_job(app, now=NOW + timedelta(days=10))["sent"] == 0


# --- A run never outlives its reserve ---------------------------------------------------

def test_an_email_too_late_to_send_and_record_is_handed_back_and_the_run_stops(
        lambda_app, postman, table, outbox):
    seed_due(postman.store, 3)
    needed = postman.time_to_send() / timedelta(milliseconds=1)

    class Clock:
        """Time enough to start an item, then a claim that ate most of it."""

        def __init__(self):
            self.looks = 0

        def get_remaining_time_in_millis(self):
            self.looks += 1
            return postman.reserve_millis if self.looks == 1 else needed - 1

    result = followup.run(load_event("scheduled_event.json"), Clock())

    assert result["sent"] == 0 and result["stopped_early"] is True
    assert outbox() == []
    items = stored_requests(table)
    assert all("lease_owner" not in i and i["attempts"] == 0 for i in items)  # handed back
    assert followup.run(load_event("scheduled_event.json"), FakeContext(900_000))["sent"] == 3


def test_a_record_failing_for_good_is_retried_with_pauses_only_while_the_lease_allows(
        app, postman, table, outbox, wall):
    """DynamoDB down for longer than the lease: each try after botocore's attempts waits
    a pause that doubles (never a tight loop), and the last leaves time for its call."""
    import dataclasses

    seed_due(postman.store, 1)
    pauses = []

    def sleep(seconds):  # the pause passes on the leases' clock, not the test's
        pauses.append(seconds)
        wall.advance(timedelta(seconds=seconds))

    def always_fail(request, **_):
        if b"sent:check" in (request.body or b""):
            return faults.dynamodb_error(request, "InternalServerError", 500)

    waiting = dataclasses.replace(postman, sleep=sleep)
    with faults.fast_backoff(), faults.injected(table.meta.client, always_fail,
                                                "before-send.dynamodb.UpdateItem"):
        result = run_job(app, waiting)

    assert result["sent"] == 0 and len(outbox()) == 1  # sent, left unrecorded
    assert pauses[:5] == [1, 2, 4, 8, 16] and set(pauses[5:]) <= {20}
    lease = timedelta(seconds=app.config["LEASE_SECONDS"])
    spent = timedelta(seconds=sum(pauses))
    assert spent + postman.call_worst + postman.skew <= lease


def test_the_forms_receipt_retries_its_record_only_within_the_invocations_time(
        app, postman, table, outbox, wall):
    """On Lambda the form's receipt is sent within the request: its record's retries end
    while the invocation still has time for their last call (not when the 300 s lease
    would), so the function is never killed mid-retry."""
    import dataclasses

    from tests.helpers import csrf_token
    from tests.helpers import submit as fill_in

    class Invocation:  # Lambda's context: the pauses use up the invocation's time
        left = 100_000

        def get_remaining_time_in_millis(self):
            return self.left

    invocation, pauses = Invocation(), []

    def sleep(seconds):
        pauses.append(seconds)
        invocation.left -= seconds * 1000
        wall.advance(timedelta(seconds=seconds))

    def always_fail(request, **_):
        if b"sent:receipt" in (request.body or b""):
            return faults.dynamodb_error(request, "InternalServerError", 500)

    app.extensions["tracker"] = dataclasses.replace(postman, sleep=sleep)
    client = app.test_client()
    csrf_token(client)  # the form's page first, as a browser
    with faults.fast_backoff(), faults.injected(table.meta.client, always_fail,
                                                "before-send.dynamodb.UpdateItem"):
        client.environ_base["lambda.context"] = invocation
        answer = fill_in(client)

    assert answer.status_code == 303 and len(outbox()) == 1  # the traveller's part holds
    assert pauses == [1, 2, 4, 8, 16, 20]
    worst = (postman.call_worst + postman.skew).total_seconds()
    assert sum(pauses) + worst <= 100


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "AccessDeniedException",
                                  "ValidationException"])
def test_a_record_refused_for_good_is_not_asked_again(app, postman, table, outbox, code):
    """The table gone (a restore's swap), access denied, a malformed write: the same
    answer however often it is asked, so no second try and no pause."""
    import dataclasses

    seed_due(postman.store, 1)
    tries, pauses = [], []

    def refuse(request, **_):
        if b"sent:check" in (request.body or b""):
            tries.append(1)
            return faults.dynamodb_error(request, code, 400)

    with faults.injected(table.meta.client, refuse, "before-send.dynamodb.UpdateItem"):
        run_job(app, dataclasses.replace(postman, sleep=pauses.append))

    assert len(tries) == 1 and pauses == [] and len(outbox()) == 1


def test_a_record_failing_past_botocores_attempts_is_tried_again_and_sends_nothing_twice(
        app, postman, table, outbox, wall):
    from tests.test_faults import item

    [request_id] = seed_due(postman.store, 1)
    dynamodb = table.meta.client
    attempts = dynamodb.meta.config.retries["total_max_attempts"]
    failures = []

    def fail_the_first_record(request, **_):
        body = request.body or b""
        if b"sent:check" in body and len(failures) < attempts:  # all of botocore's
            failures.append(1)
            return faults.dynamodb_error(request, "InternalServerError", 500)

    with faults.fast_backoff(), faults.injected(dynamodb, fail_the_first_record,
                                                "before-send.dynamodb.UpdateItem"):
        result = run_job(app)

    assert len(failures) == attempts
    assert result["sent"] == 1 and result["errors"] == 0
    assert item(table, request_id)["history"][-1]["what"] == "sent:check"
    wall.advance(timedelta(seconds=app.config["LEASE_SECONDS"] + 1))  # no lease to lapse
    assert run_job(app, now=NOW + timedelta(hours=1))["sent"] == 0
    assert len(outbox()) == 1
