"""AWS fails in small ways: nothing lost, nothing sent twice.

SES faults are made at the sesv2 client (botocore's ``before-send`` event, or a
stand-in mailer); DynamoDB is always moto's server over HTTP, its faults injected the
same way at the app's own client.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from itertools import count

import pytest

from soak import faults
from tests.conftest import ROOT
from tests.jobs import NOW, address, seed_due, sends_per_address
from tracker import followups, store


@pytest.fixture
def dynamodb_client(table):
    """The very DynamoDB client under the app's Table resource."""
    return table.meta.client


@pytest.fixture
def fast_backoff():
    with faults.fast_backoff():
        yield


def run_job(app, postman=None, now=NOW) -> dict:
    with app.app_context():
        return followups.run(postman or app.extensions["tracker"], now=now)


def item(table, request_id: str) -> dict:
    return table.get_item(Key={"pk": f"REQ#{request_id}"}, ConsistentRead=True)["Item"]


def test_ses_throttling_mid_run_leaves_the_rest_due_for_the_next_run(
        app, postman, ses_client, table, outbox):
    ids = seed_due(postman.store, 10)
    calls = count(1)

    def throttle_the_fourth(request, **_):
        if next(calls) == 4:
            return faults.ses_error(request, "TooManyRequestsException", 429)

    with faults.injected(ses_client, throttle_the_fourth, "before-send.sesv2.SendEmail"):
        first = run_job(app)

    assert first["sent"] == 3 and first["throttled"] is True
    unsent = [i for i in ids if item(table, i)["next_kind"] == "check"]
    assert len(unsent) == 7
    assert all("lease_owner" not in item(table, i) for i in unsent)
    assert all(item(table, i)["attempts"] == 0 for i in unsent)  # not held against them

    second = run_job(app, now=NOW + timedelta(minutes=15))
    assert second["sent"] == 7
    sent = sends_per_address(outbox)
    assert len(sent) == 10 and set(sent.values()) == {1}


def test_permanent_rejection_fails_the_request_and_is_never_retried(
        app, postman, ses_client, table, outbox):
    ids = seed_due(postman.store, 5)
    tries = count()

    def reject_one(request, **_):
        if faults.recipient(request) == address(1):
            next(tries)
            return faults.ses_error(request, "MessageRejected", 400)

    with faults.injected(ses_client, reject_one, "before-send.sesv2.SendEmail"):
        result = run_job(app)
        for later in (timedelta(hours=1), timedelta(days=3), timedelta(days=30)):
            assert run_job(app, now=NOW + later)["failed"] == 0

    assert result["failed"] == 1 and result["sent"] == 4
    assert next(tries) == 1  # one try, ever
    rejected = item(table, ids[1])
    assert rejected["status"] == "failed" and "next_kind" not in rejected
    assert rejected["history"][-1]["what"] == "failed:check" and "expires" in rejected
    assert address(1) not in sends_per_address(outbox)


def test_dynamodb_throttling_is_retried_and_the_run_completes(
        app, postman, dynamodb_client, outbox, fast_backoff):
    seed_due(postman.store, 20)
    calls = count(1)
    injected = []

    def throttle_every_third(request, **_):
        if next(calls) % 3 == 0:
            injected.append(1)
            return faults.dynamodb_error(request, "ThrottlingException")

    with faults.injected(dynamodb_client, throttle_every_third, "before-send.dynamodb"):
        result = run_job(app)

    assert len(injected) > 20  # the job met throttling all along …
    assert result["sent"] == 20 and result["errors"] == 0  # … and never noticed
    sent = sends_per_address(outbox)
    assert len(sent) == 20 and set(sent.values()) == {1}


def test_ses_sends_are_tried_once_by_botocore(app, ses_client, outbox):
    # A retried send whose first answer was lost would be a duplicate email: the job,
    # not botocore, decides when to try again.
    tries = count()

    def fail(request, **_):
        next(tries)
        return faults.ses_error(request, "InternalFailure", 500)

    postman = app.extensions["tracker"]
    seed_due(postman.store, 1)
    with faults.injected(ses_client, fail, "before-send.sesv2.SendEmail"):
        assert run_job(app)["retry"] == 1
    assert next(tries) == 1


def test_dynamodb_failing_on_one_item_past_retries_does_not_stop_the_run(
        app, postman, dynamodb_client, table, outbox, fast_backoff):
    ids = seed_due(postman.store, 5)

    def break_one(request, **_):
        if b"REQ#seed00002" in (request.body or b""):
            return faults.dynamodb_error(request, "InternalServerError", 500)

    with faults.injected(dynamodb_client, break_one, "before-send.dynamodb"):
        result = run_job(app)

    assert result["sent"] == 4 and result["errors"] == 1
    assert item(table, ids[2])["next_kind"] == "check"
    assert run_job(app, now=NOW + timedelta(minutes=15))["sent"] == 1
    assert set(sends_per_address(outbox).values()) == {1}


class Crash(BaseException):
    """The process dies here (Lambda killed, out of memory): no except clause runs."""


class CrashingMailer:
    def send_email(self, **_):
        raise Crash()


def test_crash_after_claiming_sends_the_email_once_after_the_lease_expires(
        app, postman, table, outbox, wall):
    [request_id] = seed_due(postman.store, 1)
    crashing = dataclasses.replace(postman, mailer=CrashingMailer())

    with pytest.raises(Crash):
        run_job(app, crashing)
    claimed = item(table, request_id)
    assert claimed["lease_owner"] and claimed["next_kind"] == "check"
    assert outbox() == []

    # The lease runs on the wall clock: a later event time does not free it …
    lease = timedelta(seconds=app.config["LEASE_SECONDS"])
    wall.advance(lease - timedelta(seconds=5))
    during = run_job(app, now=NOW + timedelta(hours=6))
    assert during["sent"] == 0 and during["skipped"] == 1  # still held by the dead run

    wall.advance(timedelta(seconds=10))  # … the wall clock running past it does
    after = run_job(app, now=NOW + timedelta(minutes=1))
    assert after["sent"] == 1
    assert run_job(app, now=NOW + 2 * lease)["sent"] == 0
    assert sends_per_address(outbox) == {address(0): 1}


def job_processes(tmp_path, *runs: tuple[str, float]) -> list[dict]:
    """Run the job in one OS process per (event time, send rate), started together."""
    go = tmp_path / "go"
    readies = [tmp_path / f"ready{n}" for n in range(len(runs))]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.jobprocess", at, str(ready), str(go), str(rate)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for ready, (at, rate) in zip(readies, runs, strict=True)]
    while not all(r.exists() for r in readies):
        assert all(p.poll() is None for p in procs), "a job process died while starting"
        time.sleep(0.01)
    go.touch()
    results = [json.loads(p.communicate()[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return results


def test_two_processes_over_500_due_requests_send_each_email_once(
        postman, outbox, tmp_path):
    seed_due(postman.store, 500)
    results = job_processes(tmp_path, ("2026-09-18T05:00:00Z", 0), ("2026-09-18T05:00:00Z", 0))

    sent = sends_per_address(outbox)
    assert len(sent) == 500 and set(sent.values()) == {1}
    assert sum(r["sent"] for r in results) == 500
    assert all(r["sent"] > 0 for r in results)  # both processes really took part


def test_store_maps_exhausted_dynamodb_retries_to_store_error(
        postman, dynamodb_client, fast_backoff):
    def always_throttle(request, **_):
        return faults.dynamodb_error(request, "ThrottlingException")

    with faults.injected(dynamodb_client, always_throttle, "before-send.dynamodb"):
        with pytest.raises(store.StoreError):
            postman.store.get("anything")


def test_a_late_run_overlapping_a_current_one_sends_each_email_once(
        postman, outbox, tmp_path):
    # Lambda delivers the 05:00 event late, while the 05:45 run is sending: the leases of
    # each are judged by the same wall clock, so neither takes over the other's.
    seed_due(postman.store, 30)
    results = job_processes(tmp_path, ("2026-09-18T05:00:00Z", 20),
                            ("2026-09-18T05:45:00Z", 20))

    sent = sends_per_address(outbox)
    assert len(sent) == 30 and set(sent.values()) == {1}
    assert sum(r["sent"] for r in results) == 30


# --- The fault table (README, Reliability): one test per SES answer ------------------

def run_for_an_hour(app, handler):
    """Run the job every 15 minutes for an hour with ``handler`` before every send."""
    from tracker import aws

    ses = aws.client("sesv2", max_attempts=1)
    with faults.injected(ses, handler, "before-send.sesv2.SendEmail"):
        return [run_job(app, now=NOW + timedelta(minutes=15 * n)) for n in range(4)]


def assert_paused_then_all_sent(app, table, outbox, ids, during):
    """SES refused the run every time; nothing failed or counted; all goes out after."""
    assert all(r["paused"] and r["stalled"] and not r["throttled"] for r in during)
    assert all(r["failed"] == 0 and r["sent"] == 0 and r["retry"] == 0 for r in during)
    assert all(item(table, i)["next_kind"] == "check" for i in ids)
    assert all(item(table, i)["attempts"] == 0 for i in ids)  # not held against them
    assert all("lease_owner" not in item(table, i) for i in ids)
    after = run_job(app, now=NOW + timedelta(hours=2))
    assert after["sent"] == len(ids) and not after["paused"] and not after["stalled"]
    assert set(sends_per_address(outbox).values()) == {1} and len(outbox()) == len(ids)


def test_an_unverified_sender_pauses_the_job_until_verified_then_all_goes_out(
        app, postman, table, outbox):
    """moto's own answer over HTTP: the sender's identity is not there."""
    from tracker import aws

    ids = seed_due(postman.store, 5)
    aws.client("sesv2").delete_email_identity(EmailIdentity="tracker@example.com")
    during = [run_job(app, now=NOW + timedelta(minutes=15 * n)) for n in range(4)]

    aws.client("ses").verify_email_identity(EmailAddress="tracker@example.com")
    assert_paused_then_all_sent(app, table, outbox, ids, during)


# What real SES answers (its MessageRejected text), where moto cannot produce it.
UNVERIFIED_SENDER = ("Email address is not verified. The following identities failed the "
                     "check in region EU-CENTRAL-1: tracker@example.com")
UNVERIFIED_DOMAIN = ("Email address is not verified. The following identities failed the "
                     "check in region EU-CENTRAL-1: example.com")


def sandbox_refusal(request):
    """The sandbox: every recipient SES has not verified is refused."""
    return ("Email address is not verified. The following identities failed the check "
            f"in region EU-CENTRAL-1: {faults.recipient(request)}")


@pytest.mark.parametrize("code, status, text", [
    ("MessageRejected", 400, UNVERIFIED_SENDER),
    ("MessageRejected", 400, UNVERIFIED_DOMAIN),
    ("MessageRejected", 400, sandbox_refusal),
    ("SendingPausedException", 400, "sending paused"),
    ("AccountSendingPausedException", 400, "sending paused"),
    ("ConfigurationSetSendingPausedException", 400, "sending paused"),
    ("AccountSuspendedException", 400, "suspended"),
    ("MailFromDomainNotVerifiedException", 400, "mail from"),
    ("NotFoundException", 404, "Configuration set <esim-tracker-prod> does not exist."),
    ("ConfigurationSetDoesNotExistException", 400, "no such configuration set"),
    ("AccessDeniedException", 403, "not authorized to perform: ses:SendEmail"),
    ("AccessDenied", 403, "not authorized to perform: ses:SendEmail"),
], ids=["unverified-sender", "unverified-domain", "sandbox-recipient", "paused",
        "account-paused-v1", "configuration-set-paused", "suspended",
        "mail-from-unverified", "no-configuration-set", "no-configuration-set-v1",
        "access-denied", "access-denied-query"])
def test_a_refusal_of_the_sender_or_account_pauses_the_job_and_fails_nothing(
        app, postman, table, outbox, code, status, text):
    ids = seed_due(postman.store, 5)

    def refused(request, **_):
        message = text(request) if callable(text) else text
        return faults.ses_error(request, code, status, message=message)

    during = run_for_an_hour(app, refused)

    assert_paused_then_all_sent(app, table, outbox, ids, during)


@pytest.mark.parametrize("code, status", [
    ("TooManyRequestsException", 429), ("Throttling", 400), ("ThrottlingException", 400),
    ("LimitExceededException", 400)])
def test_throttling_stops_the_run_as_throttled_not_paused(
        app, postman, table, outbox, code, status):
    ids = seed_due(postman.store, 3)

    during = run_for_an_hour(app, lambda request, **_: faults.ses_error(request, code, status))

    assert all(r["throttled"] and r["stalled"] and not r["paused"] for r in during)
    assert all(r["failed"] == 0 and r["retry"] == 0 for r in during)
    assert all(item(table, i)["attempts"] == 0 for i in ids)
    assert run_job(app, now=NOW + timedelta(hours=2))["sent"] == 3


@pytest.mark.parametrize("code, text", [
    ("MessageRejected", "Message length is more than 10485760 bytes long: '10485761'."),
    ("MessageRejected", "The message can't be sent because it contains invalid content."),
    ("BadRequestException", "Illegal address"),
], ids=["too-long", "invalid-content", "bad-request"])
def test_a_refusal_of_this_one_message_fails_it_at_once_and_the_run_goes_on(
        app, postman, table, outbox, code, text):
    ids = seed_due(postman.store, 3)

    def reject_one(request, **_):
        if faults.recipient(request) == address(1):
            return faults.ses_error(request, code, 400, message=text)

    [first, *later] = run_for_an_hour(app, reject_one)

    assert first["failed"] == 1 and first["sent"] == 2 and not first["paused"]
    assert all(r["failed"] == 0 and r["sent"] == 0 for r in later)
    assert item(table, ids[1])["status"] == "failed"
    assert item(table, ids[1])["history"][-1]["what"] == "failed:check"


@pytest.mark.parametrize("code, status", [
    ("InternalFailure", 500), ("ServiceUnavailable", 503), ("SomethingNew", 400)])
def test_a_server_error_of_one_email_backs_it_off_and_the_run_goes_on(
        app, postman, table, outbox, code, status):
    ids = seed_due(postman.store, 3)

    def fail_one(request, **_):
        if faults.recipient(request) == address(1):
            return faults.ses_error(request, code, status)

    [first, *_] = run_for_an_hour(app, fail_one)

    assert first["retry"] == 1 and first["sent"] == 2 and not first["stalled"]
    assert item(table, ids[1])["attempts"] >= 1 and item(table, ids[1])["status"] == "open"


def form_metrics(capsys) -> dict[str, float]:
    """The web-mail counts of the EMF lines printed since the last call."""
    from tests.helpers import emf_lines

    totals = {"WebMailPaused": 0, "WebMailFailed": 0}
    for line in emf_lines(capsys.readouterr().out):
        for name in totals:
            totals[name] += line.get(name, 0)
    return totals


def test_a_form_sent_while_the_sender_is_unverified_is_kept_and_receipted_later(
        client, app, table, outbox, clock, capsys, monkeypatch):
    """moto's own answer over HTTP, on the form: stored, no ``failed``, counted, sent later."""
    from tests.helpers import stored_requests, submit
    from tracker import aws

    aws.client("sesv2").delete_email_identity(EmailIdentity="tracker@example.com")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")  # metrics on
    capsys.readouterr()

    assert submit(client).status_code == 303
    assert form_metrics(capsys) == {"WebMailPaused": 1, "WebMailFailed": 0}
    [stored] = stored_requests(table)
    assert stored["status"] == "open" and stored["next_kind"] == "receipt"
    assert "lease_owner" not in stored and stored["attempts"] == 0
    assert run_job(app, now=clock.now)["paused"] is True  # still refused: still due

    aws.client("ses").verify_email_identity(EmailAddress="tracker@example.com")
    assert run_job(app, now=clock.now + timedelta(minutes=15))["sent"] == 1
    [receipt] = outbox()
    assert receipt["to"] == "traveller@example.com"


def test_a_form_whose_receipt_ses_refuses_for_good_is_counted(
        client, app, ses_client, table, capsys, monkeypatch):
    from tests.helpers import stored_requests, submit

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")
    capsys.readouterr()
    rejected = lambda request, **_: faults.ses_error(  # noqa: E731
        request, "MessageRejected", 400, message="contains invalid content")
    with faults.injected(ses_client, rejected, "before-send.sesv2.SendEmail"):
        assert submit(client).status_code == 303

    assert form_metrics(capsys) == {"WebMailPaused": 0, "WebMailFailed": 1}
    assert stored_requests(table)[0]["status"] == "failed"


@pytest.fixture
def ses_unreachable(monkeypatch):
    """SES at a port where nothing listens, until the test calls the returned ``back``."""
    from tests.conftest import free_port
    from tracker import aws

    monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", f"http://127.0.0.1:{free_port()}")
    aws.reset()  # the app caches its clients: build them again on the new endpoint

    def back():
        monkeypatch.delenv("AWS_ENDPOINT_URL_SESV2")
        aws.reset()

    yield back
    aws.reset()


def test_ses_unreachable_for_a_day_then_back_sends_every_email_and_fails_none(
        app, postman, table, outbox, ses_unreachable):
    ids = seed_due(postman.store, 30)
    day = [run_job(app, now=NOW + timedelta(minutes=15 * n)) for n in range(97)]
    assert sum(r["failed"] for r in day) == 0 and sum(r["sent"] for r in day) == 0
    assert day[0]["throttled"] and day[-1]["throttled"]  # paused, morning and evening

    ses_unreachable()
    later = NOW + timedelta(days=1, minutes=15)
    assert run_job(app, now=later)["sent"] == 30
    assert all(item(table, i)["status"] == "open" for i in ids)
    sent = sends_per_address(outbox)
    assert len(sent) == 30 and set(sent.values()) == {1}


def test_one_email_that_keeps_failing_backs_off_and_is_given_up_after_three_days(
        app, postman, ses_client, table, outbox, caplog):
    ids = seed_due(postman.store, 3)
    tries = []

    def fail_one(request, **_):
        if faults.recipient(request) == address(1):
            tries.append(1)
            return faults.ses_error(request, "InternalFailure", 500)

    given_up_at = None
    with faults.injected(ses_client, fail_one, "before-send.sesv2.SendEmail"):
        for n in range(4 * 96):  # every 15 minutes for four days
            at = NOW + timedelta(minutes=15 * n)
            if run_job(app, now=at)["failed"]:
                given_up_at = at
                break

    assert given_up_at is not None and timedelta(days=3) <= given_up_at - NOW
    assert given_up_at - NOW < timedelta(days=3, hours=9)  # ≤ one backoff late, overnight
    assert 8 <= len(tries) <= 20  # backed off, not every run, yet never silent for long
    failed = item(table, ids[1])
    assert failed["status"] == "failed" and failed["history"][-1]["what"] == "failed:check"
    assert any(r.levelname == "ERROR" and "giving up" in r.getMessage()
               for r in caplog.records)
    assert len(sends_per_address(outbox)) == 2


@pytest.mark.parametrize("damage", [
    ("REMOVE next_key", {}),  # breaks the due iterator itself
    ("REMOVE email, #s", {"#s": "status"}),  # an older schema, a hand edit
    ("SET due_at = :bad", {":bad": "2026-09-18 04:00"}),  # sorts as due, does not parse
], ids=["no-next-key", "missing-attributes", "unparsable-due-at"])
def test_an_unreadable_item_is_quarantined_and_the_run_goes_on(
        app, postman, table, outbox, caplog, damage):
    ids = seed_due(postman.store, 6)
    expression, extra = damage
    names = {k: v for k, v in extra.items() if k.startswith("#")}
    values = {k: v for k, v in extra.items() if k.startswith(":")}
    table.update_item(Key={"pk": f"REQ#{ids[3]}"}, UpdateExpression=expression,
                      **({"ExpressionAttributeNames": names} if names else {}),
                      **({"ExpressionAttributeValues": values} if values else {}))

    result = run_job(app)

    assert result["sent"] == 5 and result["quarantined"] == 1
    poisoned = item(table, ids[3])
    assert "due_part" not in poisoned and "lease_owner" not in poisoned
    assert poisoned["quarantined"]
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged and all(address(3) not in r.getMessage() for r in caplog.records)
    assert any(getattr(r, "key", None) == f"REQ#{ids[3]}" for r in logged)
    assert run_job(app, now=NOW + timedelta(hours=1))["quarantined"] == 0  # out of the way
    assert len(sends_per_address(outbox)) == 5


def test_dynamodb_unreachable_past_retries_is_a_503_the_traveller_can_retry(
        client, dynamodb_client, fast_backoff):
    """A connection error or a timeout is no ClientError: the store translates it too."""
    from tests.helpers import VALID, csrf_token

    data = dict(VALID, csrf_token=csrf_token(client))
    with faults.injected(dynamodb_client, lambda request, **_: faults.connection_error(
            request), "before-send.dynamodb"):
        response = client.post("/", data=data)
    assert response.status_code == 503 and response.headers["Retry-After"]
