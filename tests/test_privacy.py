"""Personal data: never in a log line, deleted at once on request, expiring when closed."""

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import link, local_path, submit
from tracker import logs

EMAIL = "privacy.traveller@example.org"
PHONE = "+994 50 987 65 43"
PHONE_DIGITS = ("994509876543", "509876543", "0509876543", "987 65 43", "98765", "6543")
ANY_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


class Lines(logging.Handler):
    """Keep every record as the JSON line the tracker would write."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def every_log_line(capfd):
    """Every log line: the tracker's at all levels, anyone's at WARNING (as on Lambda),
    and whatever reaches stdout or stderr."""
    tracker, root = logging.getLogger("tracker"), logging.getLogger()
    mine, theirs = Lines(), Lines()
    theirs.setLevel(logging.WARNING)
    saved = tracker.level
    tracker.setLevel(logging.DEBUG)
    tracker.addHandler(mine)
    root.addHandler(theirs)

    def lines():
        printed = capfd.readouterr()
        return mine.lines + theirs.lines + printed.err.splitlines() + printed.out.splitlines()

    try:
        yield lines
    finally:
        tracker.removeHandler(mine)
        root.removeHandler(theirs)
        tracker.setLevel(saved)


def csrf(page) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                     page.get_data(as_text=True)).group(1)


def run_job(runner, at: str) -> dict:
    result = runner.invoke(args=["followups", "run", "--at", at], catch_exceptions=False)
    return json.loads(result.output.strip().splitlines()[-1])


def answer(client, check_path: str, reply: str):
    token = csrf(client.get(check_path))
    evidence = ["written"] if reply == "cancelled" else []  # proof: closes the request
    assert client.post(check_path, data={"csrf_token": token, "answer": reply,
                                         "evidence": evidence}).status_code == 303


def requests_in(table) -> list[dict]:
    return [i for i in table.scan()["Items"] if i["pk"].startswith("REQ#")]


def test_a_whole_journey_logs_no_address_and_no_phone_digits(
        client, runner, outbox, table, clock, every_log_line):
    # form → receipt
    assert submit(client, email=EMAIL, phone=PHONE, requested_on="2026-09-14").status_code == 303
    [receipt] = outbox()
    assert receipt["to"] == EMAIL
    # job → check email → "still active" → escalation → re-check → "cancelled"
    assert run_job(runner, "2026-09-18T05:00:00Z")["sent"] == 1
    check_path = local_path(link(outbox()[-1], "/check/"))
    clock.now = datetime(2026, 9, 18, 6, 0, tzinfo=UTC)
    answer(client, check_path, "still_active")
    assert run_job(runner, "2026-09-22T06:00:00Z")["sent"] == 1
    clock.now = datetime(2026, 9, 22, 7, 0, tzinfo=UTC)
    answer(client, local_path(link(outbox()[-1], "/check/")), "cancelled")
    assert len(outbox()) == 4  # receipt, check, escalation, re-check
    # manage → delete
    manage = local_path(link(receipt, "/manage/"))
    page = client.get(manage)
    assert "6543" in page.get_data(as_text=True)  # the page may show it; logs may not
    path, _, query = manage.partition("?")
    assert client.post(f"{path}/delete?{query}", data={"csrf_token": csrf(page)}).status_code \
        == 303

    lines = every_log_line()
    assert any('"request created"' in line for line in lines)  # the capture works
    assert any('"sent"' in line for line in lines)
    for line in lines:
        assert not ANY_ADDRESS.search(line), line
        assert not any(digits in line for digits in PHONE_DIGITS), line


def test_delete_my_data_removes_the_request_at_once(client, outbox, table):
    submit(client, email=EMAIL, phone=PHONE)
    [item] = requests_in(table)
    manage = local_path(link(outbox()[0], "/manage/"))
    page = client.get(manage)
    path, _, query = manage.partition("?")

    client.post(f"{path}/delete?{query}", data={"csrf_token": csrf(page)})

    assert table.get_item(Key={"pk": item["pk"]}, ConsistentRead=True).get("Item") is None
    assert requests_in(table) == []
    assert client.get(manage).status_code == 404
    # Nothing else we hold names the address in clear.
    assert EMAIL not in json.dumps(table.scan()["Items"], default=str)


def test_the_address_in_clear_lives_only_on_its_request(client, table):
    submit(client, email=EMAIL, phone=PHONE)
    others = [i for i in table.scan()["Items"] if not i["pk"].startswith("REQ#")]
    assert EMAIL not in json.dumps(others, default=str).lower()
    [item] = requests_in(table)
    assert not any(d in json.dumps(item, default=str) for d in PHONE_DIGITS[:4])


def expiry_of(item: dict) -> datetime:
    return datetime.fromtimestamp(int(item["expires"]), UTC)


def test_open_requests_never_expire(client, table):
    submit(client, email=EMAIL, phone=PHONE)
    [item] = requests_in(table)
    assert item["status"] == "open" and "expires" not in item


def test_closed_requests_expire_after_90_days(client, runner, outbox, table, clock):
    # verified
    submit(client, email=EMAIL, phone=PHONE, requested_on="2026-09-14")
    run_job(runner, "2026-09-18T05:00:00Z")
    clock.now = datetime(2026, 9, 18, 6, 0, tzinfo=UTC)
    answer(client, local_path(link(outbox()[-1], "/check/")), "cancelled")
    # stopped from the manage page
    clock.now = datetime(2026, 9, 14, 8, 0, tzinfo=UTC)
    submit(client, email="second@example.org", phone=PHONE, requested_on="2026-09-14")
    manage = local_path(link(outbox()[-1], "/manage/"))
    page = client.get(manage)
    path, _, query = manage.partition("?")
    client.post(f"{path}/stop?{query}", data={"csrf_token": csrf(page)})
    # no answer after the reminders (the first two requests are closed by now)
    submit(client, email="third@example.org", phone=PHONE, requested_on="2026-09-14")
    for at in ("2026-09-22T05:00:00Z", "2026-09-24T05:00:00Z", "2026-09-28T05:00:00Z"):
        run_job(runner, at)

    items = {i["email"]: i for i in requests_in(table)}
    statuses = {email: i["status"] for email, i in items.items()}
    assert statuses == {EMAIL: "verified", "second@example.org": "stopped",
                        "third@example.org": "no_answer"}
    closed_at = {EMAIL: datetime(2026, 9, 18, 6, 0, tzinfo=UTC),
                 "second@example.org": datetime(2026, 9, 14, 8, 0, tzinfo=UTC),
                 "third@example.org": datetime(2026, 9, 28, 5, 0, tzinfo=UTC)}
    for email, item in items.items():
        assert expiry_of(item) == closed_at[email] + timedelta(days=90), email


def test_an_unhandled_error_logs_its_type_and_place_never_its_text(
        app, client, outbox, monkeypatch, every_log_line):
    """A 500 logs what failed and where (endpoint, innermost frame), not what it said:
    an exception's message may hold anything, an address included."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: a 500 page, logged
    submit(client, email=EMAIL, requested_on="2026-09-14")
    manage = local_path(link(outbox()[0], "/manage/"))
    store = app.extensions["tracker"].store

    def broken(request_id):
        raise LookupError(f"no item for {EMAIL} (request {request_id})")

    monkeypatch.setattr(store, "get", broken)
    every_log_line()  # forget what the submission logged
    assert client.get(manage).status_code == 500

    lines = every_log_line()
    [entry] = [json.loads(line) for line in lines if "unhandled error" in line]
    assert entry["error"] == "LookupError" and entry["endpoint"] == "web.manage"
    assert entry["where"].endswith(":broken")  # file:line:function of the raise
    assert "exception" not in entry
    assert not any(EMAIL in line or ANY_ADDRESS.search(line) for line in lines)
