"""The only module that speaks DynamoDB: translates records and errors, nothing more.

One table. A request is the item ``pk = "REQ#<id>"``. The sparse index ``due`` holds
only requests with an email pending (``due_part`` is set exactly then), keyed by
``due_at``, so the job's Query reads what is due and never the table's history.

Sending once, as a timeline:
  run A: Query due ─ claim (conditional update: same next_key, lease free) ─ send ─ record
  run B: Query due ─ claim fails: A holds the lease, or next_key has moved on
  crash between send and record: the lease expires and the email is sent again;
  that window (one SES call) is the only way to a duplicate.

Two clocks: what is *due* is judged by the run's event time (``now``), which may be
late or replayed; a lease and its expiry by the wall clock (``lease_now``), which every
run shares, so a late run never takes over a lease a current run still holds.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta

from tracker import stats
from tracker.aws import errors
from tracker.limits import Quota
from tracker.model import Event, Request
from tracker.policy import CLOSED_TTL, Progress, expires_at

log = logging.getLogger(__name__)

DUE_INDEX = "due"
DUE_PART = "due"
# Requests by ``addr_key``, the keyed hash of their address (also the pk of that
# address's suppression item): a bounce stops them all without a Scan.
ADDRESS_INDEX = "by_address"


class StoreError(Exception):
    """DynamoDB failed in a way a retry of the whole operation may fix."""


class Suppressed(Exception):
    """The address is on the suppression list: nothing may be sent to it."""


class Unreadable(Exception):
    """A stored item the code cannot read (older schema, hand edit); ``key`` names it."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class OverLimit(Exception):
    """An abuse counter is at its limit; ``quota`` says which one and until when."""

    def __init__(self, quota: Quota):
        super().__init__(quota.name)
        self.quota = quota


# A transaction cancelled by a concurrent one on the same item is tried again this often.
_CONFLICT_RETRIES = 3
_RETRY_REASONS = {"None", "ConditionalCheckFailed", "TransactionConflict"}


def _bump(table_name: str, quota: Quota) -> dict:
    """Count one use of ``quota``, on the condition that it is still under its limit."""
    return {"Update": {
        "TableName": table_name, "Key": {"pk": quota.key},
        "UpdateExpression": "ADD #n :one SET #exp = if_not_exists(#exp, :exp)",
        "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
        "ExpressionAttributeNames": {"#n": "n", "#exp": "expires"},
        "ExpressionAttributeValues": {":one": 1, ":exp": quota.expires, ":limit": quota.limit}}}


def iso(moment: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# Every recorded change appends to the timeline and bumps the version.
_APPEND_EVENT = ("#hist = list_append(#hist, :event)", "#ver = #ver + :one")


def _key(request_id: str) -> dict:
    return {"pk": f"REQ#{request_id}"}


def _unreachable_is_unavailable(method):
    """DynamoDB not reached past botocore's attempts (a connection error, a timeout: no
    ClientError) is a StoreError too, which callers retry or answer with a 503."""

    @functools.wraps(method)
    def translated(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except errors.BotoCoreError as exc:
            raise StoreError(f"{method.__name__}: {type(exc).__name__}") from exc

    return translated


def _is_condition_failure(exc: Exception) -> bool:
    return exc.response["Error"]["Code"] in (
        "ConditionalCheckFailedException", "TransactionCanceledException")


def _progress_fields(progress: Progress, now: datetime) -> dict:
    """The item attributes that encode a Progress (None means remove)."""
    expires = expires_at(progress, now)
    return {
        "status": progress.status,
        "next_kind": progress.next_kind,
        "next_key": progress.next_key,
        "due_at": iso(progress.due_at) if progress.due_at else None,
        "due_part": DUE_PART if progress.next_kind else None,
        "reminders": progress.reminders,
        "rechecks": progress.rechecks,
        "escalations": progress.escalations,
        "expires": int(expires.timestamp()) if expires else None,
    }


def _to_request(item: dict) -> Request:
    """Translate an item; Unreadable (naming only its key) when it does not parse."""
    try:
        return _parse_request(item)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(str(item.get("pk", "?"))) from exc


def _moment(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def _parse_request(item: dict) -> Request:
    progress = Progress(
        status=item["status"], next_kind=item.get("next_kind"),
        due_at=parse_iso(item["due_at"]) if item.get("due_at") else None,
        reminders=int(item.get("reminders", 0)), rechecks=int(item.get("rechecks", 0)),
        escalations=int(item.get("escalations", 0)))
    history = tuple(Event(parse_iso(e["at"]), e["what"]) for e in item.get("history", []))
    return Request(
        id=item["id"], email=item["email"], operator=item["operator"],
        phone_last4=item.get("phone_last4", ""), channel=item["channel"],
        requested_on=date.fromisoformat(item["requested_on"]), timezone=item["timezone"],
        lang=item["lang"], created_at=parse_iso(item["created_at"]), progress=progress,
        history=history, version=int(item.get("version", 0)),
        attempts=int(item.get("attempts", 0)), lease_until=_moment(item.get("lease_until")),
        failing_since=(parse_iso(item["failing_since"]) if item.get("failing_since")
                       else None),
        evidence=tuple(item.get("evidence", ())),
        plan_ends_on=(date.fromisoformat(item["plan_ends_on"])
                      if item.get("plan_ends_on") else None),
        counted=bool(item.get("stats_counted")),
        voice=None if item.get("stats_voice") is None else bool(item["stats_voice"]))


def _update(fields: dict, *extra_sets: str) -> tuple[str, dict, dict]:
    """Build SET/REMOVE clauses for ``fields``; a None value removes the attribute."""
    names, values, sets, removes = {}, {}, list(extra_sets), []
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
        else:
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
    expression = ("SET " + ", ".join(sets)) if sets else ""
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression.strip(), names, values


def _change(progress: Progress, what: str, now: datetime,
            extra: dict | None = None) -> tuple[str, dict, dict]:
    """The update that moves a request to ``progress``: timeline entry, version bump,
    attempts reset and any lease dropped (plus ``extra`` request attributes)."""
    fields = _progress_fields(progress, now)
    fields.update(attempts=0, failing_since=None, lease_owner=None, lease_until=None,
                  **(extra or {}))
    expression, names, values = _update(fields, *_APPEND_EVENT)
    names.update({"#hist": "history", "#ver": "version"})
    values.update({":event": [{"at": iso(now), "what": what}], ":one": 1})
    return expression, names, values


class Store:
    """Requests in DynamoDB; takes its boto3 Table so tests can hand it any."""

    def __init__(self, table, *, lease_seconds: int = 120,
                 address_key: Callable[[str], str] | None = None,
                 older_address_keys: Callable[[str], list[str]] | None = None,
                 stats_place: Callable[[str, str, str], tuple[str, int]] | None = None):
        self.table = table
        # (address, operator, month) -> the key and expiry of its one counted place in
        # the stats (limits.stats_place with the pepper); None: no such limit (tests)
        self.stats_place = stats_place
        self.lease = timedelta(seconds=lease_seconds)
        # address -> "SUPP#<keyed hash>" (tracker.suppression.address_key with the pepper)
        self.address_key = address_key
        # The same under older peppers, still looked up after a pepper leak (deploy/secret)
        self.older_address_keys = older_address_keys or (lambda address: [])

    def address_keys(self, address: str) -> list[str]:
        """Every key a suppression of ``address`` may have: the current pepper's first."""
        if not self.address_key:
            return []
        return [self.address_key(address), *self.older_address_keys(address)]

    @_unreachable_is_unavailable
    def create(self, request: Request, *, now: datetime, lease_owner: str | None = None,
               lease_now: datetime | None = None, quotas: Sequence[Quota] = ()) -> bool:
        """Store a new request once; False when that id exists (a double submit).

        One TransactWriteItems does it all: the conditional put, a check that the address
        is not suppressed, and one bump of each abuse counter. Raises Suppressed or
        OverLimit, and then nothing is written and nothing counted.
        """
        item = {
            "pk": _key(request.id)["pk"], "id": request.id, "email": request.email,
            "operator": request.operator,
            "channel": request.channel, "requested_on": request.requested_on.isoformat(),
            "timezone": request.timezone, "lang": request.lang,
            "created_at": iso(request.created_at), "version": 0, "attempts": 0,
            "history": [{"at": iso(now), "what": "submitted"}],
        }
        if request.phone_last4:  # a reseller eSIM has none; DynamoDB Local refuses ""
            item["phone_last4"] = request.phone_last4
        if request.plan_ends_on:
            item["plan_ends_on"] = request.plan_ends_on.isoformat()
        if self.address_key:
            item["addr_key"] = self.address_key(request.email)
        item.update({k: v for k, v in _progress_fields(request.progress, now).items()
                     if v is not None})
        item["stats_counted"] = 1  # counted below: the backfill must not count it again
        if lease_owner:
            # Born claimed: the submitting request sends the receipt without a claim call.
            item.update(lease_owner=lease_owner,
                        lease_until=int(((lease_now or now) + self.lease).timestamp()))
        put = {"Put": {"TableName": self.table.name, "Item": item,
                       "ConditionExpression": "attribute_not_exists(pk)"}}
        writes = [put]  # the stats count answers, not submissions anyone can make
        failed = self._transact(writes, quotas,
                                suppression_keys=self.address_keys(request.email))
        return 0 not in failed  # the request exists: a re-post, whatever else failed

    @_unreachable_is_unavailable
    def spend(self, quotas: Sequence[Quota], *, address: str | None = None) -> None:
        """Count one use against each quota, if the address (when given) may be mailed.

        Raises Suppressed or OverLimit, and then nothing is counted.
        """
        self._transact([], quotas, suppression_keys=self.address_keys(address) if address
                       else [])

    def _transact(self, writes: list[dict], quotas: Sequence[Quota], *,
                  suppression_keys: Sequence[str]) -> set[int]:
        """Run ``writes`` guarded by the suppression check and the quotas, all or nothing.

        Returns the indexes of ``writes`` whose own condition failed; raises Suppressed
        or OverLimit when a guard failed and no write did.
        """
        guards = [_bump(self.table.name, q) for q in quotas]
        guards += [{"ConditionCheck": {
            "TableName": self.table.name, "Key": {"pk": key},
            "ConditionExpression": "attribute_not_exists(pk)"}} for key in suppression_keys]
        reasons = self._transact_items(writes + guards)
        failed = {i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"}
        mine = {i for i in failed if i < len(writes)}
        if mine or not failed:
            return mine
        if any(i >= len(writes) + len(quotas) for i in failed):
            raise Suppressed()
        raise OverLimit(next(q for i, q in enumerate(quotas, len(writes)) if i in failed))

    def _transact_items(self, items: list[dict]) -> list[str]:
        """One TransactWriteItems; the cancellation reason of each item ([] on success).

        A transaction conflict (a double click racing itself, two submissions bumping one
        counter) is retried briefly; anything else a retry could fix is a StoreError.
        """
        if not items:
            return []
        client = self.table.meta.client  # the resource's client: plain Python values
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                if len(items) == 1 and "Put" in items[0]:
                    client.put_item(**items[0]["Put"])  # nothing to guard: a plain put
                else:
                    client.transact_write_items(TransactItems=items)
                return []
            except errors.ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code == "ConditionalCheckFailedException":
                    return ["ConditionalCheckFailed"]
                if code != "TransactionCanceledException":
                    raise StoreError("transact_write_items failed") from exc
                reasons = [r.get("Code", "None")
                           for r in exc.response.get("CancellationReasons", [])]
                if any(r not in ("None", "ConditionalCheckFailed") for r in reasons):
                    if attempt < _CONFLICT_RETRIES and set(reasons) <= _RETRY_REASONS:
                        time.sleep(0.05 * 2 ** attempt)
                        continue
                    raise StoreError(f"transaction cancelled: {reasons}") from exc
                return reasons
        raise AssertionError("unreachable")

    @_unreachable_is_unavailable
    def get(self, request_id: str) -> Request | None:
        """Read one request, strongly consistent."""
        try:
            item = self.table.get_item(Key=_key(request_id), ConsistentRead=True).get("Item")
        except errors.ClientError as exc:
            raise StoreError("get_item failed") from exc
        return _to_request(item) if item else None

    def due(self, now: datetime, *, page_size: int = 100) -> Iterator[tuple[str, str]]:
        """Yield (request id, pending email key) of everything due at ``now``, oldest first.

        An index entry that names no request or no pending key comes as (its item's
        ``pk``, None), for the caller to quarantine.
        """
        for item in self._query(
                IndexName=DUE_INDEX, Limit=page_size,
                KeyConditionExpression="due_part = :part AND due_at <= :now",
                ExpressionAttributeValues={":part": DUE_PART, ":now": iso(now)}):
            pk, key = item.get("pk"), item.get("next_key")
            if not (isinstance(pk, str) and pk.startswith("REQ#") and isinstance(key, str)):
                yield str(pk), None
                continue
            yield pk.removeprefix("REQ#"), key

    @_unreachable_is_unavailable
    def claim(self, request_id: str, next_key: str, *, owner: str, now: datetime,
              lease_now: datetime) -> Request | None:
        """Reserve one pending email for ``owner``; None when someone else has it.

        ``now`` (the run's event time) says whether it is due; ``lease_now`` (the wall
        clock) whether an earlier lease has run out. Raises Unreadable, holding no lease,
        when the item does not parse.
        """
        try:
            item = self.table.update_item(
                Key=_key(request_id),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression=(
                    "next_key = :key AND due_at <= :now AND "
                    "(attribute_not_exists(lease_until) OR lease_until < :lease_now)"),
                ExpressionAttributeValues={
                    ":owner": owner, ":until": int((lease_now + self.lease).timestamp()),
                    ":key": next_key, ":now": iso(now),
                    ":lease_now": int(lease_now.timestamp())},
                ReturnValues="ALL_NEW")["Attributes"]
        except errors.ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise StoreError("claim failed") from exc
        return _to_request(item)

    @_unreachable_is_unavailable
    def confirm(self, request: Request, *, owner: str) -> tuple[bool, str | None]:
        """Read, just before a send, whether ``owner`` still holds the request's pending
        email, and why its address must not be mailed (None when it may).

        One TransactGetItems, strongly consistent, of the request and the address's
        suppression items: an answer, a stop or a delete since the claim dropped the lease
        or moved ``next_key``. A transaction conflict means one is being written right
        now: not ours either.
        """
        gets = [{"Get": {"TableName": self.table.name, "Key": _key(request.id),
                         "ProjectionExpression": "lease_owner, next_key"}}]
        # Every key a suppression of the address may have (older peppers after a leak).
        gets += [{"Get": {"TableName": self.table.name, "Key": {"pk": key},
                          "ProjectionExpression": "#r",
                          "ExpressionAttributeNames": {"#r": "reason"}}}
                 for key in self.address_keys(request.email)]
        try:
            answer = self.table.meta.client.transact_get_items(TransactItems=gets)
        except errors.ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False, None
            raise StoreError("confirm failed") from exc
        found = [entry.get("Item") or {} for entry in answer["Responses"]]
        ours = (found[0].get("lease_owner") == owner
                and found[0].get("next_key") == request.progress.next_key)
        return ours, next((item["reason"] for item in found[1:] if item.get("reason")), None)

    @_unreachable_is_unavailable
    def quarantine(self, key: str, *, now: datetime) -> bool:
        """Take an unreadable item out of the due index, keeping it for a maintainer."""
        try:
            self.table.update_item(
                Key={"pk": key},
                UpdateExpression=("SET quarantined = :now "
                                  "REMOVE due_part, lease_owner, lease_until"),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": iso(now)})
        except errors.ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise StoreError("quarantine failed") from exc
        return True

    @_unreachable_is_unavailable
    def record(self, request: Request, progress: Progress, *, owner: str, what: str,
               now: datetime) -> bool:
        """Record a sent (or finally failed) email and move on; releases the lease."""
        expression, names, values = _change(progress, what, now)
        values.update({":owner": owner, ":key": request.progress.next_key})
        return self._conditional_update(
            request.id, expression, names, values,
            "lease_owner = :owner AND next_key = :key")

    @_unreachable_is_unavailable
    def release(self, request: Request, *, owner: str, due_at: datetime | None = None,
                failed_at: datetime | None = None) -> bool:
        """Give a claimed email back unsent, to be tried again when due.

        ``failed_at``: the send failed then; counts an attempt and keeps the time of the
        first failure in a row (``failing_since``), so giving up can be judged by time.
        """
        fields = {"lease_owner": None, "lease_until": None}
        if due_at:
            fields["due_at"] = iso(due_at)
        extra = ["#att = if_not_exists(#att, :zero) + :inc"]
        if failed_at:
            extra.append("#since = if_not_exists(#since, :since)")
        expression, names, values = _update(fields, *extra)
        names["#att"] = "attempts"
        values.update({":inc": int(failed_at is not None), ":zero": 0, ":owner": owner})
        if failed_at:
            names["#since"] = "failing_since"
            values[":since"] = iso(failed_at)
        return self._conditional_update(request.id, expression, names, values,
                                        "lease_owner = :owner")

    @_unreachable_is_unavailable
    def save(self, request: Request, progress: Progress, *, what: str, now: datetime,
             extra: dict | None = None, counts: stats.Counts | None = None) -> bool:
        """Apply a traveller's change if nobody changed the request since it was read.

        ``extra``: request attributes the change sets too (the answer's evidence, the
        day a not_yet traveller asked). ``counts`` go to the stats counters in the same
        transaction, or not at all.
        """
        # Dropping a job's lease is safe: its record() is conditional on holding it, so
        # the traveller's change wins and the pending email it replaced is never recorded.
        if counts and counts.claim and self.stats_place:
            # The request's first counted answer: it takes its mailbox's place for this
            # operator and month, or, if another request holds it, counts nothing.
            place = self.stats_place(request.email, counts.operator, counts.month)
            expression, names, values = _change(progress, what, now,
                                                dict(extra or {}, stats_voice=1))
            values[":version"] = request.version
            taken = self._counted_update(request.id, expression, names, values,
                                         "#ver = :version", counts, place=place)
            if taken is not None:
                return taken
            extra, counts = dict(extra or {}, stats_voice=0), None
        expression, names, values = _change(progress, what, now, extra)
        values[":version"] = request.version
        return self._conditional_update(request.id, expression, names, values,
                                        "#ver = :version", counts=counts)

    @_unreachable_is_unavailable
    def stop(self, request_id: str, *, status: str, what: str, now: datetime) -> bool:
        """End all further email for a request, whatever else changed since it was read.

        Not conditional on the version: a stop must win every race (a mail provider's
        one-click POST is never retried). It touches only what a stop changes, and drops
        any job's lease, whose record is then refused. False when no email was pending.
        """
        try:
            self.table.update_item(
                Key=_key(request_id),
                UpdateExpression=(
                    "SET #st = :status, #exp = :expires, #hist = list_append(#hist, :event), "
                    "#ver = #ver + :one REMOVE next_kind, next_key, due_at, due_part, "
                    "lease_owner, lease_until, failing_since"),
                ConditionExpression="attribute_exists(pk) AND attribute_exists(next_kind)",
                ExpressionAttributeNames={"#st": "status", "#exp": "expires",
                                          "#hist": "history", "#ver": "version"},
                ExpressionAttributeValues={
                    ":status": status, ":expires": int((now + CLOSED_TTL).timestamp()),
                    ":event": [{"at": iso(now), "what": what}], ":one": 1})
        except errors.ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise StoreError("stop failed") from exc
        return True

    @_unreachable_is_unavailable
    def delete(self, request_id: str) -> None:
        """Remove a request and everything it holds, now."""
        try:
            self.table.delete_item(Key=_key(request_id))
        except errors.ClientError as exc:
            raise StoreError("delete_item failed") from exc

    @_unreachable_is_unavailable
    def suppress(self, addr_key: str, *, reason: str, now: datetime,
                 until: datetime) -> None:
        """Mark an address as never to be mailed (again) until ``until``; idempotent."""
        try:
            self.table.put_item(Item={"pk": addr_key, "reason": reason, "at": iso(now),
                                      "expires": int(until.timestamp())})
        except errors.ClientError as exc:
            raise StoreError("put_item of suppression failed") from exc

    @_unreachable_is_unavailable
    def suppression(self, address: str) -> str | None:
        """Why ``address`` must not be mailed (``bounce``, ``complaint``), or None.

        The job reads it inside ``confirm``; this is for maintainers' tools (make smoke).
        """
        for key in self.address_keys(address):
            try:
                item = self.table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item")
            except errors.ClientError as exc:
                raise StoreError("get_item of suppression failed") from exc
            if item:
                return item["reason"]
        return None

    @_unreachable_is_unavailable
    def requests_to(self, addr_key: str) -> list[str]:
        """The ids of every stored request to the address with this key."""
        return [item["id"] for item in self._query(
            IndexName=ADDRESS_INDEX, KeyConditionExpression="addr_key = :key",
            ExpressionAttributeValues={":key": addr_key})]

    def _query(self, **query) -> Iterator[dict]:
        """Yield every item a Query finds, page by page, as it is read."""
        while True:
            try:
                page = self.table.query(**query)
            except errors.ClientError as exc:
                raise StoreError(f"query of index {query['IndexName']} failed") from exc
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _conditional_update(self, request_id, expression, names, values, condition, *,
                            counts: stats.Counts | None = None) -> bool:
        if counts:
            return self._counted_update(request_id, expression, names, values, condition,
                                        counts)
        try:
            self.table.update_item(
                Key=_key(request_id), UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues=values)
        except errors.ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise StoreError("update_item failed") from exc
        return True

    # ── Stats counters (tracker.stats): one item per operator, channel and month ──────
    # Updated in the same TransactWriteItems as the change they count, so a failed or
    # retried write never loses nor doubles a count. They carry no ``expires`` and no
    # personal data: they outlive the requests' TTL and their deletion.

    def _counted_update(self, request_id, expression, names, values, condition,
                        counts: stats.Counts, *,
                        place: tuple[str, int] | None = None) -> bool | None:
        """The request's conditional update and its counters, all or nothing; with a
        ``place`` (key, expiry), also its mailbox's place, on the condition that no
        other request holds it. None when only that place was taken."""
        update = {"Update": {
            "TableName": self.table.name, "Key": _key(request_id),
            "UpdateExpression": expression, "ConditionExpression": condition,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}
        items = [update, counter_update(self.table.name, counts)]
        if place:
            items.append({"Put": {
                "TableName": self.table.name,
                "Item": {"pk": place[0], "expires": place[1]},
                "ConditionExpression": "attribute_not_exists(pk)"}})
        reasons = self._transact_items(items)
        if place and reasons and reasons[0] == "None" and reasons[2] != "None":
            return None
        return not reasons

    def stats_rows(self, months: Sequence[str]) -> list[stats.Row]:
        """The counter items of these months, read by key (BatchGetItem, 100 at a time)."""
        keys = [_stats_key(o, c, m) for o in stats.TIMED_OPERATORS
                for c in stats.TIMED_CHANNELS for m in months]
        client, rows = self.table.meta.client, []
        for start in range(0, len(keys), 100):
            pending = {self.table.name: {"Keys": keys[start:start + 100]}}
            for attempt in range(6):
                try:
                    page = client.batch_get_item(RequestItems=pending)
                except errors.ClientError as exc:
                    raise StoreError("batch_get_item of stats failed") from exc
                rows += [_to_row(item) for item in page["Responses"].get(self.table.name, [])]
                pending = page.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(0.05 * 2 ** attempt)  # DynamoDB asks us to slow down
            else:
                raise StoreError("batch_get_item of stats left keys unread")
        return rows

    def backfill_stats(self, *, page_size: int = 100) -> dict[str, int]:
        """Count every stored request not yet counted, once: the one Scan of this module.

        Each request is counted in one transaction with marking it counted, on the
        condition that it is unmarked and unchanged, so running it again, or after a
        crash, or beside live answers, counts nothing twice.
        """
        done = {"counted": 0, "skipped": 0, "raced": 0, "unreadable": 0}
        scan = {"Limit": page_size, "ConsistentRead": True,
                "FilterExpression": "begins_with(pk, :req) AND attribute_not_exists(#c)",
                "ExpressionAttributeNames": {"#c": "stats_counted"},
                "ExpressionAttributeValues": {":req": "REQ#"}}
        while True:
            try:
                page = self.table.scan(**scan)
            except errors.ClientError as exc:
                raise StoreError("scan for the stats backfill failed") from exc
            for item in page.get("Items", []):
                try:
                    request = _to_request(item)
                except Unreadable as exc:  # left as it is for a maintainer, by key only
                    log.error("backfill passed over an unreadable item",
                              extra={"key": exc.key})
                    done["unreadable"] += 1
                    continue
                done[self._backfill_one(request)] += 1
            if "LastEvaluatedKey" not in page:
                return done
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _backfill_one(self, request: Request) -> str:
        """Mark one request counted, adding what it holds to the counters."""
        # "answer:cancelled:bill+written": the evidence, where the answer recorded it.
        answered = [(parts[1], e.at, tuple(parts[2].split("+")) if len(parts) > 2 else ())
                    for e in request.history if e.what.startswith("answer:")
                    for parts in [e.what.split(":")]]
        counts = stats.replay(request.operator, request.channel, request.requested_on,
                              answered)
        place = (self.stats_place(request.email, counts.operator, counts.month)
                 if counts and self.stats_place else None)
        for claim in ((True, False) if place else (False,)):
            mark = {"Update": {
                "TableName": self.table.name, "Key": _key(request.id),
                "UpdateExpression": "SET #c = :one, #ver = #ver + :one"
                                    + (", #v = :voice" if place else ""),
                "ConditionExpression": "attribute_not_exists(#c) AND #ver = :version",
                "ExpressionAttributeNames": {"#c": "stats_counted", "#ver": "version",
                                             **({"#v": "stats_voice"} if place else {})},
                "ExpressionAttributeValues": {":one": 1, ":version": request.version,
                                              **({":voice": int(claim)} if place else {})}}}
            items = [mark]
            if counts and (claim or not place):
                items.append(counter_update(self.table.name, counts))
            if claim:
                items.append({"Put": {
                    "TableName": self.table.name,
                    "Item": {"pk": place[0], "expires": place[1]},
                    "ConditionExpression": "attribute_not_exists(pk)"}})
            reasons = self._transact_items(items)
            if not reasons:
                return "counted" if counts and (claim or not place) else "skipped"
            if not (claim and reasons[0] == "None"):
                return "raced"  # marked meanwhile, or answered: a second run counts it
        return "raced"


def _stats_key(operator: str, channel: str, month: str) -> dict:
    # STAT2#: the counters of what the stats count since issue 19 (emailed links, one
    # request per mailbox, proof). The older STAT# items counted any answer; unread.
    return {"pk": f"STAT2#{operator}#{channel}#{month}"}


def counter_update(table_name: str, counts: stats.Counts) -> dict:
    """The TransactWriteItems ``Update`` that adds ``counts`` to their counter item."""
    names = {"#op": "operator", "#ch": "channel", "#mo": "month"}
    values = {":op": counts.operator, ":ch": counts.channel, ":mo": counts.month}
    adds = []
    for i, (name, n) in enumerate(sorted(counts.add.items())):
        names[f"#c{i}"], values[f":c{i}"] = name, n
        adds.append(f"#c{i} :c{i}")
    return {"Update": {
        "TableName": table_name, "Key": _stats_key(counts.operator, counts.channel,
                                                   counts.month),
        "UpdateExpression": f"SET #op = :op, #ch = :ch, #mo = :mo ADD {', '.join(adds)}",
        "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}


def _to_row(item: dict) -> stats.Row:
    cell = {"pk", "operator", "channel", "month"}
    return stats.Row(item["operator"], item["channel"], item["month"],
                     {k: int(v) for k, v in item.items() if k not in cell})


_ATTRIBUTES = {"pk": "S", "due_part": "S", "due_at": "S", "addr_key": "S"}
_INDEXES = [
    {"IndexName": DUE_INDEX,
     "KeySchema": [{"AttributeName": "due_part", "KeyType": "HASH"},
                   {"AttributeName": "due_at", "KeyType": "RANGE"}],
     "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["id", "next_key"]}},
    {"IndexName": ADDRESS_INDEX,
     "KeySchema": [{"AttributeName": "addr_key", "KeyType": "HASH"}],
     "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["id"]}},
]


def _definitions(indexes: list[dict]) -> list[dict]:
    names = {"pk"} | {k["AttributeName"] for i in indexes for k in i["KeySchema"]}
    return [{"AttributeName": n, "AttributeType": _ATTRIBUTES[n]} for n in sorted(names)]


def create_table(client, name: str) -> bool:
    """Create the table, its indexes and TTL if missing; True when it was created.

    On a table from an older version, adds the indexes it lacks (one per call, as
    DynamoDB allows; run it again once the first is ACTIVE).
    """
    try:
        client.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=_definitions(_INDEXES),
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=_INDEXES)
    except errors.ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        _add_missing_index(client, name)
        return False
    client.get_waiter("table_exists").wait(TableName=name)
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    return True


def _add_missing_index(client, name: str) -> None:
    table = client.describe_table(TableName=name)["Table"]
    indexes = table.get("GlobalSecondaryIndexes", [])
    if any(i.get("IndexStatus") not in (None, "ACTIVE") for i in indexes):
        return  # one index change at a time
    have = {i["IndexName"] for i in indexes}
    missing = [i for i in _INDEXES if i["IndexName"] not in have]
    if missing:
        client.update_table(
            TableName=name, AttributeDefinitions=_definitions([missing[0]]),
            GlobalSecondaryIndexUpdates=[{"Create": missing[0]}])
        log.info("adding index", extra={"index": missing[0]["IndexName"]})
