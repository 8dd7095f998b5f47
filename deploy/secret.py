"""Create, rotate and re-key a stage's secrets in SSM Parameter Store, before any deploy.

    python -m deploy.secret prod                   # once, before the first `zappa deploy`
    python -m deploy.secret prod --rotate          # 1. a new key, verify-only everywhere
    zappa update prod                              #    every container learns it
    python -m deploy.secret prod --promote         # 2. it signs; the old one verifies
    zappa update prod
    python -m deploy.secret prod --revoke-previous # only after a leak of the old key

    python -m deploy.secret prod --rotate-pepper   # a leaked ADDRESS_PEPPER: the same two
    python -m deploy.secret prod --promote-pepper  # phases (zappa update after each), then
    python -m deploy.secret prod --rekey-pepper    # re-key what holds the address in clear

The parameters are SecureStrings under ``/esim-tracker/<stage>/`` (the ``SECRETS_PATH``
of zappa_settings.json), encrypted with the account's AWS-managed ``aws/ssm`` key:

- ``SECRET_KEY`` signs CSRF tokens, submission ids, the session and every emailed link;
- ``SECRET_KEY_FALLBACKS``: the ring's other keys, comma-separated, that verify and sign
  nothing: a published key (``<key>:next``, the first phase of a rotation) and retired
  ones (``<key>:<day it stopped signing>``; a bare key retired before days were kept);
- ``ADDRESS_PEPPER`` keys suppressions, abuse counters and the stats' per-mailbox items;
  normally one value; after a leak, ``<new>,<old>:<day>``: the first writes, all are
  looked up, until every item written under an old one has expired.

Two phases, because each container reads the parameters once, at its cold start: a key
that signed before every live container could verify it would break links and forms on
the others (a 404, a CSRF failure). ``zappa update`` is the barrier: it changes the
function, and no container started before it serves an invocation once the update has
finished (Lambda: "The LastUpdateStatus ... fields in the response from
GetFunctionConfiguration indicate when the update is complete and the function is
processing events with the new configuration",
https://docs.aws.amazon.com/lambda/latest/api/API_UpdateFunctionConfiguration.html).
``--promote`` refuses until the function was updated after the key was published.

A retired key is kept for ``KEY_RETENTION`` (longer than any request can live, so every
link of a request that can still be answered or unsubscribed verifies), never by count.
An existing value is never replaced except by these commands, and no value is printed. A
function deployed before the keys moved to SSM kept its key in a plain environment
variable: that key is adopted as SECRET_KEY and as ADDRESS_PEPPER.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from deploy.lambda_runner import function_name, stage_settings

# A retired key verifies this long: a request lives at most a reseller plan's 366 days
# (forms.MAX_PLAN_DAYS) plus 90 days closed (policy.CLOSED_TTL) plus DynamoDB's TTL
# sweep (days); others far less. tests/test_keys.py holds the sum below this.
KEY_RETENTION = timedelta(days=730)
# An old pepper is looked up until every suppression written under it has expired
# (feedback.SUPPRESSION_TTL, 365 days) and the TTL sweep has removed it.
PEPPER_RETENTION = timedelta(days=400)
# SSM's standard tier holds 4096 characters a value ("Standard tier parameters support a
# maximum parameter value of 4096 characters", its ValidationException; see
# https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html):
# past it, wait for old keys to leave the ring. 64-character keys: some 50 fit.
MAX_VALUE = 4096
PENDING = "next"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class RotationRefused(Exception):
    """A step that would strand links or orphan data; the message says what to do."""


@dataclass(frozen=True)
class Entry:
    """One key of a ring: ``state`` is PENDING, the day it retired, or None (unknown)."""

    key: str
    state: str | None = None

    def __str__(self) -> str:
        return f"{self.key}:{self.state}" if self.state else self.key

    @property
    def retired_on(self) -> date | None:
        return date.fromisoformat(self.state) if self.state and _DAY.fullmatch(
            self.state) else None


def parse_ring(value: str) -> list[Entry]:
    """The entries of a comma-separated ring value, in order."""
    out = []
    for text in filter(None, (part.strip() for part in value.split(","))):
        key, _, state = text.rpartition(":")
        if key and (state == PENDING or _DAY.fullmatch(state)):
            out.append(Entry(key, state))
        else:
            out.append(Entry(text))
    return out


def format_ring(entries: list[Entry]) -> str:
    value = ",".join(str(e) for e in entries)
    if len(value) > MAX_VALUE:
        raise RotationRefused(
            f"the ring would hold {len(entries)} keys ({len(value)} characters), more than "
            f"an SSM parameter takes: wait until old keys pass their retention")
    return value


def _variables(stage: str) -> dict:
    settings = stage_settings(stage)
    return {**settings.get("environment_variables", {}),
            **settings.get("aws_environment_variables", {})}


def secrets_path(stage: str) -> str:
    """The stage's SSM path, as the function reads it (its SECRETS_PATH)."""
    return _variables(stage)["SECRETS_PATH"]


def new_key() -> str:
    """A fresh random key (64 URL-safe characters: no comma or colon, the ring's marks)."""
    return secrets.token_urlsafe(48)


def _put(ssm, name: str, value: str, *, overwrite: bool = False) -> bool:
    """Store a SecureString; False when it exists and ``overwrite`` is off."""
    try:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=overwrite,
                          Description="esim-tracker secret; see deploy/secret.py")
    except ssm.exceptions.ParameterAlreadyExists:
        return False
    return True


def _get(ssm, name: str) -> dict | None:
    """The parameter (Value, LastModifiedDate), or None when it does not exist."""
    try:
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except ssm.exceptions.ParameterNotFound:
        return None


def legacy_key(lambda_client, name: str) -> str | None:
    """The SECRET_KEY an older deploy put in the function's variables, if any."""
    try:
        config = lambda_client.get_function_configuration(FunctionName=name)
    except lambda_client.exceptions.ResourceNotFoundException:
        return None  # the first deploy has not happened yet
    return ((config.get("Environment") or {}).get("Variables") or {}).get("SECRET_KEY")


def ensure(ssm, path: str, *, adopt: str | None = None) -> dict[str, bool]:
    """Create SECRET_KEY and ADDRESS_PEPPER unless they exist; which were created.

    A stage that has a SECRET_KEY but no ADDRESS_PEPPER keyed its suppressions and
    counters with that key (config.address_pepper): the pepper is pinned to it, so
    nothing is orphaned, and it stays when the key rotates.
    """
    prefix = path.rstrip("/") + "/"
    existing = _get(ssm, prefix + "SECRET_KEY")
    key = adopt or new_key()
    created = _put(ssm, prefix + "SECRET_KEY", key)
    pepper = existing["Value"] if existing else (adopt or new_key())
    return {"SECRET_KEY": created, "ADDRESS_PEPPER": _put(ssm, prefix + "ADDRESS_PEPPER",
                                                          pepper)}


def _fallbacks(ssm, prefix: str) -> tuple[list[Entry], datetime | None]:
    found = _get(ssm, prefix + "SECRET_KEY_FALLBACKS")
    return (parse_ring(found["Value"]), found["LastModifiedDate"]) if found else ([], None)


def _kept(entries: list[Entry], today: date, retention: timedelta) -> list[Entry]:
    """The entries still needed: pending, undated, or retired within ``retention``."""
    return [e for e in entries if e.retired_on is None or today - e.retired_on <= retention]


def rotate(ssm, path: str, *, now: datetime) -> int:
    """Phase 1: publish a new key that verifies everywhere and signs nothing yet.

    Refuses on a stage whose ADDRESS_PEPPER is not stored apart from the key (the
    pepper would follow the key and orphan every suppression), and while a published
    key waits for ``--promote``. Drops retired keys past KEY_RETENTION. Returns how
    many keys verify once it is live.
    """
    prefix = path.rstrip("/") + "/"
    if _get(ssm, prefix + "SECRET_KEY") is None:
        raise RotationRefused(f"{prefix}SECRET_KEY does not exist: run "
                              f"`python -m deploy.secret <stage>` first")
    if _get(ssm, prefix + "ADDRESS_PEPPER") is None:
        raise RotationRefused(
            f"{prefix}ADDRESS_PEPPER is not stored: suppressions and counters are keyed "
            f"with SECRET_KEY, which a rotation would change. Run `python -m deploy.secret "
            f"<stage>` first (it pins the pepper to the current key), then rotate.")
    entries, _ = _fallbacks(ssm, prefix)
    if any(e.state == PENDING for e in entries):
        raise RotationRefused("a published key waits: run --promote (after zappa update)")
    ring = [Entry(new_key(), PENDING), *_kept(entries, now.date(), KEY_RETENTION)]
    _put(ssm, prefix + "SECRET_KEY_FALLBACKS", format_ring(ring), overwrite=True)
    return len(ring) + 1


def function_updated_at(lambda_client, name: str) -> datetime | None:
    """When the function's last update finished; None while one is in progress or failed."""
    found = lambda_client.get_function_configuration(FunctionName=name)
    if found.get("LastUpdateStatus", "Successful") != "Successful":
        return None
    # ISO 8601 as "YYYY-MM-DDThh:mm:ss.sTZD" (AWS writes "+0000"; moto "Z", nanoseconds)
    stamp = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)",
                         found["LastModified"])
    zone = "+00:00" if stamp.group(2) == "Z" else stamp.group(2)
    return datetime.fromisoformat(stamp.group(1) + zone)


def _barrier(published: datetime | None, updated: datetime | None, now: datetime,
             drain: timedelta, what: str) -> None:
    """Refuse unless the function was updated after ``published``, ``drain`` ago."""
    if published is None or updated is None or updated <= published:
        raise RotationRefused(
            f"the function has not been updated since the {what} was published: run "
            f"`make update STAGE=<stage>` (so every container verifies it), then promote")
    if now - updated < drain:
        raise RotationRefused(
            f"the update finished {int((now - updated).total_seconds())} s ago; wait "
            f"{int(drain.total_seconds())} s so no invocation still runs on a container "
            f"from before it")


def promote(ssm, path: str, *, now: datetime, updated_at: datetime | None,
            drain: timedelta = timedelta(seconds=60), settle: float = 5.0) -> None:
    """Phase 2: the published key signs; the current one retires and verifies.

    Every state a cold start can read on the way verifies both keys: first the ring
    holds both (the current key still signs), then the new key signs, then the ring
    drops its copy of the new key. ``settle`` seconds pass between writes so no single
    read of the parameters straddles two of them.
    """
    prefix = path.rstrip("/") + "/"
    entries, published = _fallbacks(ssm, prefix)
    pending = [e for e in entries if e.state == PENDING]
    if len(pending) != 1:
        raise RotationRefused("no published key to promote: run --rotate first")
    _barrier(published, updated_at, now, drain, "key")
    current = _get(ssm, prefix + "SECRET_KEY")["Value"]
    others = [e for e in entries if e.state != PENDING]
    retired = Entry(current, now.date().isoformat())
    _put(ssm, prefix + "SECRET_KEY_FALLBACKS", format_ring([pending[0], retired, *others]),
         overwrite=True)
    time.sleep(settle)
    _put(ssm, prefix + "SECRET_KEY", pending[0].key, overwrite=True)
    time.sleep(settle)
    _put(ssm, prefix + "SECRET_KEY_FALLBACKS", format_ring([retired, *others]),
         overwrite=True)


def revoke_previous(ssm, path: str) -> None:
    """Drop the key the last promotion retired (it leaked): its links answer 404 now."""
    prefix = path.rstrip("/") + "/"
    entries, _ = _fallbacks(ssm, prefix)
    dated = [e for e in entries if e.retired_on]
    if not dated or any(e.state == PENDING for e in entries):
        raise RotationRefused("nothing to revoke: rotate and promote first")
    newest = max(dated, key=lambda e: e.retired_on)
    kept = [e for e in entries if e is not newest]
    if kept:
        _put(ssm, prefix + "SECRET_KEY_FALLBACKS", format_ring(kept), overwrite=True)
    else:  # SSM stores no empty value; no fallbacks is no parameter, as before a rotation
        ssm.delete_parameter(Name=prefix + "SECRET_KEY_FALLBACKS")


# ── ADDRESS_PEPPER after a leak ──────────────────────────────────────────────────────

def _peppers(ssm, prefix: str) -> tuple[list[Entry], datetime]:
    found = _get(ssm, prefix + "ADDRESS_PEPPER")
    if found is None:
        raise RotationRefused(f"{prefix}ADDRESS_PEPPER is not stored: run "
                              f"`python -m deploy.secret <stage>` first")
    return parse_ring(found["Value"]), found["LastModifiedDate"]


def rotate_pepper(ssm, path: str, *, now: datetime) -> None:
    """Phase 1: a new pepper every container looks up; the current one still writes."""
    prefix = path.rstrip("/") + "/"
    entries, _ = _peppers(ssm, prefix)
    if any(e.state == PENDING for e in entries):
        raise RotationRefused("a published pepper waits: run --promote-pepper")
    current, *old = entries
    ring = [current, Entry(new_key(), PENDING), *_kept(old, now.date(), PEPPER_RETENTION)]
    _put(ssm, prefix + "ADDRESS_PEPPER", format_ring(ring), overwrite=True)


def promote_pepper(ssm, path: str, *, now: datetime, updated_at: datetime | None,
                   drain: timedelta = timedelta(seconds=60)) -> None:
    """Phase 2: the new pepper writes; the old one is still looked up. One write."""
    prefix = path.rstrip("/") + "/"
    entries, published = _peppers(ssm, prefix)
    pending = [e for e in entries if e.state == PENDING]
    if len(pending) != 1:
        raise RotationRefused("no published pepper to promote: run --rotate-pepper first")
    _barrier(published, updated_at, now, drain, "pepper")
    current, *old = [e for e in entries if e.state != PENDING]
    ring = [Entry(pending[0].key), Entry(current.key, now.date().isoformat()), *old]
    _put(ssm, prefix + "ADDRESS_PEPPER", format_ring(ring), overwrite=True)


def rekey_pepper(ssm, path: str, table) -> dict[str, int]:
    """Re-key under the current pepper what holds an address in clear: every request's
    ``addr_key`` and the suppression item of any address a request still holds.

    A suppression item holds only a keyed hash: one whose address no request holds any
    more cannot be re-keyed; it stays under the old pepper, which the app still looks up
    until PEPPER_RETENTION has passed and the item has expired. Counters and the
    stats' per-mailbox items expire by themselves (see the README).
    """
    from tracker.suppression import address_key

    entries, _ = _peppers(ssm, path.rstrip("/") + "/")
    if any(e.state == PENDING for e in entries):
        raise RotationRefused("promote the published pepper first")
    current, old = entries[0].key, [e.key for e in entries[1:]]
    done = {"requests": 0, "suppressions": 0}
    scan = {"FilterExpression": "begins_with(pk, :req) AND attribute_exists(addr_key)",
            "ExpressionAttributeValues": {":req": "REQ#"}}
    while True:
        page = table.scan(**scan)
        for item in page.get("Items", []):
            fresh = address_key(current, item["email"])
            if item["addr_key"] == fresh:
                continue
            for pepper in old:
                stale = table.get_item(Key={"pk": address_key(pepper, item["email"])},
                                       ConsistentRead=True).get("Item")
                if stale:
                    table.put_item(Item=dict(stale, pk=fresh))
                    table.delete_item(Key={"pk": stale["pk"]})
                    done["suppressions"] += 1
            table.update_item(Key={"pk": item["pk"]}, UpdateExpression="SET addr_key = :k",
                              ConditionExpression="attribute_exists(pk)",
                              ExpressionAttributeValues={":k": fresh})
            done["requests"] += 1
        if "LastEvaluatedKey" not in page:
            return done
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    steps = parser.add_mutually_exclusive_group()
    for flag, text in (
            ("--rotate", "publish a new SECRET_KEY that verifies and signs nothing yet"),
            ("--promote", "let the published key sign (after zappa update)"),
            ("--revoke-previous", "drop the key the last promotion retired (a leak)"),
            ("--rotate-pepper", "publish a new ADDRESS_PEPPER (after a leak)"),
            ("--promote-pepper", "let the published pepper write (after zappa update)"),
            ("--rekey-pepper", "re-key requests and their suppressions (after promoting)")):
        steps.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args(argv)
    import boto3

    region = stage_settings(args.stage)["aws_region"]
    ssm, path = boto3.client("ssm", region_name=region), secrets_path(args.stage)
    functions = boto3.client("lambda", region_name=region)
    now = datetime.now(UTC)
    # No invocation outlives the function's timeout: after that long, none still runs
    # on a container from before the update.
    drain = timedelta(seconds=stage_settings(args.stage).get("timeout_seconds", 30))
    try:
        if args.rotate:
            kept = rotate(ssm, path, now=now)
            print(f"{path}: a new key is published ({kept} keys verify). Run `make update "
                  f"STAGE={args.stage}`, then --promote.", file=sys.stderr)
        elif args.promote:
            promote(ssm, path, now=now, drain=drain,
                    updated_at=function_updated_at(functions, function_name(args.stage)))
            print(f"{path}SECRET_KEY promoted. Run `make update STAGE={args.stage}`.",
                  file=sys.stderr)
        elif args.revoke_previous:
            revoke_previous(ssm, path)
            print(f"{path}: the previous key is revoked. Run `make update STAGE={args.stage}`.",
                  file=sys.stderr)
        elif args.rotate_pepper:
            rotate_pepper(ssm, path, now=now)
            print(f"{path}: a new pepper is published. Run `make update STAGE={args.stage}`, "
                  f"then --promote-pepper.", file=sys.stderr)
        elif args.promote_pepper:
            promote_pepper(ssm, path, now=now, drain=drain,
                           updated_at=function_updated_at(functions, function_name(args.stage)))
            print(f"{path}ADDRESS_PEPPER promoted. Run `make update STAGE={args.stage}`, then "
                  f"--rekey-pepper.", file=sys.stderr)
        elif args.rekey_pepper:
            table = boto3.resource("dynamodb", region_name=region).Table(
                _variables(args.stage)["TABLE_NAME"])
            print(f"re-keyed: {rekey_pepper(ssm, path, table)}", file=sys.stderr)
        else:
            adopt = legacy_key(functions, function_name(args.stage))
            for name, created in ensure(ssm, path, adopt=adopt).items():
                state = ("created" + (" from the function's old variable" if adopt else "")
                         if created else "already set, left as it is")
                print(f"{path}{name}: {state}", file=sys.stderr)
    except RotationRefused as exc:
        raise SystemExit(f"refused: {exc}") from None


if __name__ == "__main__":
    main()
