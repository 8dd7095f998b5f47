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
        app, postman, table, outbox):
    [request_id] = seed_due(postman.store, 1)
    crashing = dataclasses.replace(postman, mailer=CrashingMailer())

    with pytest.raises(Crash):
        run_job(app, crashing)
    claimed = item(table, request_id)
    assert claimed["lease_owner"] and claimed["next_kind"] == "check"
    assert outbox() == []

    lease = timedelta(seconds=app.config["LEASE_SECONDS"])
    during = run_job(app, now=NOW + lease - timedelta(seconds=5))
    assert during["sent"] == 0 and during["skipped"] == 1  # still held by the dead run

    after = run_job(app, now=NOW + lease + timedelta(seconds=5))
    assert after["sent"] == 1
    assert run_job(app, now=NOW + 2 * lease)["sent"] == 0
    assert sends_per_address(outbox) == {address(0): 1}


def test_two_processes_over_500_due_requests_send_each_email_once(
        postman, outbox, tmp_path):
    seed_due(postman.store, 500)
    go = tmp_path / "go"
    readies = [tmp_path / f"ready{n}" for n in range(2)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.jobprocess", "2026-09-18T05:00:00Z", str(ready), str(go)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for ready in readies]
    while not all(r.exists() for r in readies):
        assert all(p.poll() is None for p in procs), "a job process died while starting"
        time.sleep(0.01)
    go.touch()
    results = [json.loads(p.communicate()[0]) for p in procs]

    assert all(p.returncode == 0 for p in procs)
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
