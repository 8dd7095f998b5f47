"""The follow-up job: its work grows with what is due, not with the table's history.

Two tables on DynamoDB Local hold the same due requests among 1,000 and 50,000
stored; runs alternate between them. Then a paced run checks SEND_RATE is met and
never exceeded.
"""

from __future__ import annotations

import bisect
import dataclasses
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta

from bench.harness import Row, counted_aws, ratio_row, tracker_app

SECTION = "follow-up job"
NOW = datetime(2026, 9, 18, 8, 0, tzinfo=UTC)  # a Friday, noon in Baku: daytime
SEND_RATE = 50.0
# Of the stored requests that are not due: most are closed history, some wait for later.
PENDING_LATER_SHARE = 0.2


class _Collector:
    """A stand-in Table that keeps what Store.create would write, to seed in bulk."""

    def __init__(self, name: str):
        self.name = name
        self.items: list[dict] = []
        self.meta = self
        self.client = self

    def put_item(self, Item=None, **_):  # noqa: N803 - boto3's own argument names
        self.items.append(Item)

    def transact_write_items(self, TransactItems):  # noqa: N803
        self.items += [t["Put"]["Item"] for t in TransactItems if "Put" in t]


def _items(store, table_name: str, count: int, progress, first: int) -> list[dict]:
    """``count`` stored requests in ``progress``, in the store's own item format."""
    from tracker.model import Request
    from tracker.store import Store

    collector = _Collector(table_name)
    writer = Store(collector, address_key=store.address_key)
    for n in range(first, first + count):
        writer.create(Request(
            id=f"bench{n:07d}", email=f"traveller{n}@example.com",
            operator=("azercell", "bakcell", "nar")[n % 3], phone_last4="4567",
            channel="call", requested_on=date(2026, 9, 14), timezone="Asia/Baku",
            lang="en", created_at=NOW - timedelta(days=4), progress=progress),
            now=NOW - timedelta(days=4))
    return collector.items


def _write(table_name: str, items: list[dict]) -> None:
    from tracker import aws

    with aws.table(table_name).batch_writer() as batch:  # BatchWriteItem, 25 at a time
        for item in items:
            batch.put_item(Item=item)


def _seed(app, due: int, stored: int) -> list[dict]:
    """Store ``due`` requests due at NOW among ``stored``; return the due items."""
    from tracker import policy

    store, name = app.extensions["tracker"].store, app.config["TABLE_NAME"]
    rest = stored - due
    later = int(rest * PENDING_LATER_SHARE)
    due_items = _items(store, name, due, policy.Progress(
        next_kind=policy.CHECK, due_at=NOW - timedelta(hours=1)), 0)
    _write(name, due_items)
    _write(name, _items(store, name, later, policy.Progress(
        next_kind=policy.CHECK, due_at=NOW + timedelta(days=3)), due))
    _write(name, _items(store, name, rest - later, policy.Progress(
        status=policy.VERIFIED, next_kind=None, due_at=None), due + later))
    return due_items


def _run(app, postman=None) -> dict:
    from tracker import followups

    with app.app_context():
        return followups.run(postman or app.extensions["tracker"], now=NOW)


class _FastMailer:
    """Takes every email at once and notes when; moto's SES would be the bottleneck."""

    name = "fake"

    def __init__(self):
        self.sent_at: list[float] = []

    def send_email(self, *, from_address: str, to_address: str, message) -> str:
        self.sent_at.append(time.monotonic())
        return f"fake-{len(self.sent_at)}"


class _MemoryStore:
    """Just enough of Store, in memory: the paced run then measures the pacer alone."""

    address_key = None

    def __init__(self, requests):
        self.requests = {r.id: r for r in requests}

    def due(self, now):
        return [(r.id, r.progress.next_key) for r in list(self.requests.values())
                if r.progress.due_at and r.progress.due_at <= now]

    def claim(self, request_id, next_key, *, owner, now, **_):
        return self.requests[request_id]

    def confirm(self, request, *, owner):
        return True, None  # still ours, the address not suppressed

    def record(self, request, progress, **_):
        self.requests[request.id] = dataclasses.replace(request, progress=progress)
        return True

    def release(self, request, **_):
        return True


def _max_in_any_second(times: list[float]) -> int:
    """The most sends whose timestamps fall in one window [t, t + 1 s)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)),
               default=0)


def scaling(smoke: bool, endpoint: str) -> list[Row]:
    due, small, large, repeats = (5, 20, 200, 1) if smoke else (200, 1_000, 50_000, 3)
    apps, due_items = {}, {}
    for size, reset in ((small, True), (large, False)):
        apps[size] = tracker_app(endpoint, reset=reset, TABLE_NAME=f"bench-{size}")
        start = time.perf_counter()
        due_items[size] = _seed(apps[size], due, size)
        print(f"bench: seeded {size:,} items in {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
    seconds = {small: [], large: []}
    reads = {small: [], large: []}
    querying = {small: [], large: []}  # seconds in the due index's Query calls
    for repeat in range(repeats):
        for size in (small, large):
            if repeat:
                _write(apps[size].config["TABLE_NAME"], due_items[size])  # due again
            with counted_aws() as calls:
                start = time.perf_counter()
                result = _run(apps[size])
                seconds[size].append(time.perf_counter() - start)
                reads[size].append(calls.items_read)
                querying[size].append(calls.seconds_by_call[("dynamodb", "Query")])
            if result["sent"] != due:
                raise RuntimeError(f"expected {due} sent among {size}, got {result}")
    t_small, t_large = (statistics.median(seconds[s]) for s in (small, large))
    r_small, r_large = (max(reads[s]) for s in (small, large))
    q_small, q_large = (statistics.median(querying[s]) for s in (small, large))
    return [
        ratio_row(SECTION, f"run time, {due} due among {large:,} vs among {small:,} stored",
                  t_large, t_small, "s", "<= 1.2",
                  f"median of {repeats} runs each, DynamoDB Local, SES on moto; of which the "
                  f"due index's Query: {q_large:.2f} s vs {q_small:.2f} s (it reads only the "
                  "index's due range: items read below); without it the ratio is "
                  f"{(t_large - q_large) / (t_small - q_small):.2f}"),
        Row(SECTION, f"DynamoDB items read, {due} due among {large:,} stored", r_large,
            "items", r_small, r_large / r_small if r_small else None, "== baseline",
            f"baseline: among {small:,}; Query ScannedCount + the items of each GetItem and "
            f"TransactGetItems (the re-read before sending)"),
    ]


def _paced(app, postman, due: int) -> tuple[float, int]:
    """Run the job over ``due`` requests at SEND_RATE: achieved rate, busiest second."""
    mailer = _FastMailer()
    result = _run(app, dataclasses.replace(postman, mailer=mailer, send_rate=SEND_RATE))
    times = mailer.sent_at
    if result["sent"] != due or len(times) != due:
        raise RuntimeError(f"expected {due} sent, got {result}")
    return (len(times) - 1) / (times[-1] - times[0]), _max_in_any_second(times)


def pacing(smoke: bool, endpoint: str) -> list[Row]:
    from tracker import policy
    from tracker.model import Request

    due = 60 if smoke else 5_000
    app = tracker_app(endpoint, TABLE_NAME="bench-paced")
    postman = app.extensions["tracker"]
    requests = [Request(
        id=f"paced{n:05d}", email=f"traveller{n}@example.com", operator="azercell",
        phone_last4="4567", channel="call", requested_on=date(2026, 9, 14),
        timezone="Asia/Baku", lang="en", created_at=NOW - timedelta(days=4),
        progress=policy.Progress(next_kind=policy.CHECK, due_at=NOW - timedelta(hours=1)))
        for n in range(due)]
    alone = _paced(app, dataclasses.replace(postman, store=_MemoryStore(requests)), due)
    stored_due = min(due, 60 if smoke else 1_000)
    _seed(app, stored_due, stored_due)
    with counted_aws() as calls:
        end_to_end = _paced(app, postman, stored_due)
    per_email_ms = 1000 / end_to_end[0]
    dynamodb_ms = calls.seconds * 1000 / stored_due
    fake = "a fake mailer that takes each email at once (moto's SES is slower than 50/s)"
    return [
        ratio_row(SECTION, f"send rate achieved by the pacer, {due:,} due at "
                  f"SEND_RATE {SEND_RATE:g}/s", alone[0], SEND_RATE, "emails/s", ">= 0.9",
                  f"{fake}; the store in memory"),
        Row(SECTION, "most sends in any 1-second window (same run)", alone[1], "emails",
            goal=f"<= {SEND_RATE:g}", note="windows [t, t + 1 s) from each send"),
        ratio_row(SECTION, f"send rate achieved end to end, {stored_due:,} due at "
                  f"SEND_RATE {SEND_RATE:g}/s", end_to_end[0], SEND_RATE, "emails/s", ">= 0.9",
                  f"{fake}; DynamoDB Local: one email at a time, each {per_email_ms:.0f} ms, "
                  f"{dynamodb_ms:.0f} ms of it in {calls.total('dynamodb') / stored_due:.1f} "
                  "DynamoDB calls"),
        Row(SECTION, "most sends in any 1-second window (same run)", end_to_end[1], "emails",
            goal=f"<= {SEND_RATE:g}"),
    ]


def run(smoke: bool, endpoint: str) -> list[Row]:
    return scaling(smoke, endpoint) + pacing(smoke, endpoint)
