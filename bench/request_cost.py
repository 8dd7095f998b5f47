"""Cost per request: throughput against a bare Flask app, and AWS calls per submission/email.

Both apps run in this process behind Flask's test client and talk to the same DynamoDB
Local and moto server (SES); only the app differs.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime

from bench.harness import (
    DYNAMODB_WRITES,
    AwsCalls,
    Row,
    bootstrap,
    counted_aws,
    ratio_row,
    tracker_app,
)

SECTION = "cost per request"
SUBMITTED_AT = datetime(2026, 9, 14, 8, 0, tzinfo=UTC)  # a Monday, noon in Baku
CHECKS_DUE_AT = datetime(2026, 9, 18, 8, 0, tzinfo=UTC)  # the check emails are due


class _Traveller:
    """Posts valid, distinct submissions (own address and IP, so no abuse limit trips)."""

    def __init__(self, client):
        self.client = client
        html = client.get("/").get_data(as_text=True)
        self.token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                               html).group(1)
        self.count = 0

    def post(self):
        self.count += 1
        n = self.count
        ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        return self.client.post("/", data={
            "csrf_token": self.token, "submission_id": secrets.token_urlsafe(16),
            # A mailbox each, as travellers have (at one company's domain they would share
            # the figures' one place: tracker/stats.py).
            "email": f"traveller{n}@gmail.com", "operator": "azercell",
            "phone": "+994 50 123 45 67", "channel": "call", "timezone": "Asia/Baku",
            "consent": "y"}, environ_base={"REMOTE_ADDR": ip},
            headers={"X-Forwarded-For": ip})


def _expect(response, status: int):
    if response.status_code != status:
        raise RuntimeError(f"expected {status}, got {response.status_code}: "
                           f"{response.get_data(as_text=True)[:300]}")


def _breakdown(calls: AwsCalls, per: int) -> str:
    """``PutItem 1, SendEmail 1, …`` per submission or email."""
    return ", ".join(f"{op} {n / per:.2g}" for (_, op), n in sorted(calls.calls.items()))


def _per_second(actions: dict, count: int, rounds: int, before_round) -> dict[str, float]:
    """Requests per second of each action, run in alternating blocks of ``count``."""
    spent = dict.fromkeys(actions, 0.0)
    for _ in range(rounds):
        before_round()
        for name, action in actions.items():
            start = time.perf_counter()
            for _ in range(count):
                action()
            spent[name] += time.perf_counter() - start
    return {name: count * rounds / seconds for name, seconds in spent.items()}


def _ms_each(action, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - start) * 1000 / count


def run(smoke: bool, endpoint: str) -> list[Row]:
    from bench import baseline_app
    from tracker import followups

    block, rounds = (3, 1) if smoke else (20, 10)
    app = tracker_app(endpoint, CLOCK=lambda: SUBMITTED_AT)
    baseline_app.session.cache_clear(), baseline_app._table.cache_clear()
    bare_calls = AwsCalls(baseline_app.session())
    tracker_client, bare_client = app.test_client(), baseline_app.create_app().test_client()
    bare_form = {"email": "traveller@example.com"}
    with counted_aws() as calls:
        traveller = _Traveller(tracker_client)
        for _ in range(3):  # warm up: first renders, lazy imports, boto3 clients
            _expect(tracker_client.get("/"), 200), _expect(bare_client.get("/"), 200)
            _expect(traveller.post(), 303), _expect(bare_client.post("/", data=bare_form), 303)
        gets = _per_second({"tracker": lambda: _expect(tracker_client.get("/"), 200),
                            "bare": lambda: _expect(bare_client.get("/"), 200)},
                           block * 4, rounds, lambda: None)
        calls.reset(), bare_calls.reset()
        posts = _per_second({"tracker": lambda: _expect(traveller.post(), 303),
                             "bare": lambda: _expect(bare_client.post("/", data=bare_form), 303)},
                            block, rounds, lambda: bootstrap(app, endpoint))
        # Counted on their own, on an empty account: the rounds above also bootstrap.
        bootstrap(app, endpoint)
        calls.reset(), bare_calls.reset()
        post_ms = (_ms_each(lambda: _expect(traveller.post(), 303), block),
                   _ms_each(lambda: _expect(bare_client.post("/", data=bare_form), 303), block))
        per_submission = (calls.total("dynamodb") / block, calls.total("sesv2") / block)
        submission_calls = _breakdown(calls, block)
        aws_ms = (calls.seconds / block * 1000, bare_calls.seconds / block * 1000)
        aws_split = ", ".join(f"{op} {seconds / calls.calls[(svc, op)] * 1000:.1f}"
                              for (svc, op), seconds in sorted(calls.seconds_by_call.items()))
        calls.reset()
        with app.app_context():
            result = followups.run(app.extensions["tracker"], now=CHECKS_DUE_AT)
        sent = result["sent"]
        per_email = (calls.total("dynamodb", DYNAMODB_WRITES) / sent,
                     calls.total("sesv2") / sent, calls.total("dynamodb") / sent)
        email_calls = _breakdown(calls, sent)
        per_answer, answer_calls = _answer_cost(app, calls)

    outside = (post_ms[1] - aws_ms[1]) / (post_ms[0] - aws_ms[0])
    return [
        ratio_row(SECTION, "GET / throughput vs bare Flask page", gets["tracker"],
                  gets["bare"], "req/s", ">= 0.7",
                  "Flask test client in this process, for both apps"),
        ratio_row(SECTION, "valid POST / throughput vs bare Flask + one put_item",
                  posts["tracker"], posts["bare"], "req/s", ">= 0.7",
                  f"AWS calls (DynamoDB Local; SES on moto's server) took {aws_ms[0]:.1f} of "
                  f"{post_ms[0]:.1f} ms per tracker POST ({aws_split} ms each), "
                  f"{aws_ms[1]:.1f} of {post_ms[1]:.1f} "
                  f"ms per bare POST; outside them the ratio is {outside:.2f}. Blocks of "
                  f"{block} from fresh tables (see bench/harness.py `bootstrap`)"),
        Row(SECTION, "DynamoDB calls per submission", per_submission[0], "calls", goal="<= 2",
            note=f"per submission: {submission_calls} (counted from boto3's event hooks)"),
        Row(SECTION, "SES calls per submission", per_submission[1], "calls", goal="<= 1"),
        Row(SECTION, "DynamoDB writes per email sent by the job", per_email[0], "calls",
            goal="<= 2", note=f"per email, over {sent} check emails: {email_calls}"),
        Row(SECTION, "SES calls per email sent by the job", per_email[1], "calls",
            goal="<= 1"),
        Row(SECTION, "DynamoDB calls per answer (cancelled)", per_answer, "calls",
            goal="<= 1",
            note=f"per answer from an emailed link: {answer_calls}; one transaction of the "
                 "request's conditional update, its stats counter item and its mailbox's "
                 "place (tracker/stats.py), so on DynamoDB 3 items x 2 write units "
                 "(transactional) instead of 1 UpdateItem: about 6 WCU per counted answer "
                 "while the request item stays under 1 KB"),
    ]


def _answer_cost(app, calls: AwsCalls) -> tuple[float, str]:
    """DynamoDB calls of each traveller's "cancelled" answer, its stats counted with it."""
    from tracker import tracking

    postman = app.extensions["tracker"]
    with app.app_context():
        waiting = [postman.store.get(request_id)
                   for request_id, _ in postman.store.due(datetime(2027, 1, 1, tzinfo=UTC))]
        calls.reset()
        for request in waiting:
            # As from the check email's link (mailed): the answer the figures count.
            tracking.answer(postman, request, "cancelled", now=CHECKS_DUE_AT,
                            evidence=("written",), mailed=True)
    if not waiting:
        raise RuntimeError("no request was waiting for an answer")
    return calls.total("dynamodb") / len(waiting), _breakdown(calls, len(waiting))
