"""Helpers for the job tests: seed many due requests fast, build independent postmen."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, datetime, timedelta

from tracker import policy
from tracker.mail import SesMailer
from tracker.model import Request
from tracker.store import Store

# Friday 18 Sep 2026, 09:00 in Baku: daytime, and the check of a request made on
# Mon 14 Sep is due.
NOW = datetime.fromisoformat("2026-09-18T05:00:00+00:00")


def address(number: int) -> str:
    return f"traveller{number}@example.com"


def seed_due(store: Store, count: int, *, now: datetime = NOW, start: int = 0,
             kind: str = policy.CHECK) -> list[str]:
    """Store ``count`` requests whose ``kind`` email is due at ``now``; return their ids.

    The first goes through ``Store.create``; the rest are copies of the item it wrote,
    batch-written 25 at a time (seeding 500 one by one would dominate the test).
    """
    ids = [f"seed{number:05d}" for number in range(start, start + count)]
    progress = policy.Progress(next_kind=kind, due_at=now - timedelta(hours=1))
    first = Request(
        id=ids[0], email=address(start), operator="azercell", phone_last4="4567",
        channel="call", requested_on=date(2026, 9, 14), timezone="Asia/Baku", lang="en",
        created_at=now - timedelta(days=4), progress=progress)
    assert store.create(first, now=now - timedelta(days=4))
    template = store.table.get_item(Key={"pk": f"REQ#{ids[0]}"})["Item"]
    with store.table.batch_writer() as batch:
        for number, request_id in enumerate(ids[1:], start + 1):
            item = dict(template, pk=f"REQ#{request_id}", id=request_id,
                        email=address(number))
            if "addr_key" in item:
                item["addr_key"] = store.address_key(address(number))
            batch.put_item(Item=item)
    return ids


def own_clients(postman):
    """The same postman on a boto3 session of its own (no client shared with others)."""
    import boto3

    from tracker import aws

    session = boto3.session.Session()
    table = session.resource("dynamodb", config=aws.config_for("dynamodb")).Table(
        postman.store.table.name)
    ses = session.client("sesv2", config=aws.config_for("sesv2", 1))
    store = Store(table, lease_seconds=int(postman.store.lease.total_seconds()),
                  address_key=postman.store.address_key)
    return dataclasses.replace(postman, store=store, mailer=SesMailer(lambda: ses))


def sends_per_address(outbox) -> Counter:
    return Counter(message["to"] for message in outbox())


class FakeContext:
    """A Lambda context whose remaining time drops by ``step`` at every look."""

    def __init__(self, millis: int, step: int = 0):
        self.millis = millis
        self.step = step

    def get_remaining_time_in_millis(self) -> int:
        left = self.millis
        self.millis -= self.step
        return left
