"""Restore a stage's table to a point in time, rehearse it, and put it back in service.

    python -m deploy.restore prod [--at 2026-12-04T09:55:00Z]   # the drill
    python -m deploy.restore prod --swap                        # the cut-over

The drill restores the stage's table (point-in-time recovery, the latest restorable
moment unless ``--at``) into ``<table>-restored``, gives it what a restore leaves out
(TTL on ``expires``, point-in-time recovery, deletion protection), and counts its items
by kind beside the live table's. It changes nothing the service uses: run it as often
as you like, then delete ``<table>-restored`` (turn its protection off first).

The cut-over puts the restored items back under the stage's own table name, so the
function, its role's policy, the operations stack and the alarms stay exactly as they
are. (Pointing the function at ``<table>-restored`` instead would mean editing
TABLE_NAME in zappa_settings.json, which Zappa writes into the zip's
zappa_settings.py and its handler copies over the function's environment at every cold
start, so the function's own variable cannot change it; then the policies' table ARN,
a commit, ``zappa update``, and an IMPORT change set for the stack.) It stops the
function (reserved concurrency 0: the web answers errors, scheduled runs and SES
feedback wait in Lambda's retry queue for up to an hour, then in the dead-letter queue),
backs the live table up, deletes it, restores the restored one's backup under its name,
protects it, checks that the counts match, and starts the function again. Afterwards:
``python -m deploy.redrive <stage> --send`` for anything that reached the queue.

Each step prints how long it took. Run with the maintainer's credentials (README,
Runbook: "Restore the table").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import UTC, datetime

from deploy.lambda_runner import function_name, stage_settings

# DynamoDB restores take at least 20 minutes and usually under an hour
# (https://repost.aws/knowledge-center/dynamodb-restore-taking-long): wait up to 3 hours.
WAIT = {"Delay": 20, "MaxAttempts": 540}


class RestoreError(RuntimeError):
    """A step found something a person must look at; the message says what."""


def restored_name(table: str) -> str:
    return f"{table}-restored"


def counts(dynamodb, table: str) -> Counter:
    """Items by kind (the part of ``pk`` before its first ``#``): REQ, SUPP, STAT2,
    STATPLACE, LIMIT (and STAT, the counters before issue 19)."""
    found, scan = Counter(), {"TableName": table, "ProjectionExpression": "pk",
                              "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**scan)
        for item in page["Items"]:
            found[item["pk"]["S"].split("#", 1)[0]] += 1
        if "LastEvaluatedKey" not in page:
            return found
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def protect(dynamodb, table: str) -> None:
    """What a restore does not carry over, as deploy/operations.yaml declares it."""
    dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})
    dynamodb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True})
    dynamodb.update_table(TableName=table, DeletionProtectionEnabled=True)


def protection(dynamodb, table: str) -> dict[str, bool]:
    """Whether TTL, point-in-time recovery and deletion protection are on."""
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    pitr = dynamodb.describe_continuous_backups(TableName=table)[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    described = dynamodb.describe_table(TableName=table)["Table"]
    return {"ttl": ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
            and ttl.get("AttributeName") == "expires",
            "pitr": pitr.get("PointInTimeRecoveryStatus") == "ENABLED",
            "deletion protection": bool(described.get("DeletionProtectionEnabled"))}


def wait_active(dynamodb, table: str) -> None:
    """Until the table and every index are ACTIVE (a restore builds the indexes after)."""
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig=WAIT)
    for _ in range(WAIT["MaxAttempts"]):
        described = dynamodb.describe_table(TableName=table)["Table"]
        if all(i.get("IndexStatus", "ACTIVE") == "ACTIVE"
               for i in described.get("GlobalSecondaryIndexes", [])):
            return
        time.sleep(WAIT["Delay"])
    raise RestoreError(f"{table}: indexes still not ACTIVE")


class Steps:
    """Prints each step with the time it took, and the total."""

    def __init__(self, out=sys.stderr, clock=time.monotonic):
        self.out, self.clock = out, clock
        self.started = clock()

    def run(self, what: str, action):
        began = self.clock()
        result = action()
        print(f"{self.clock() - began:8.1f} s  {what}", file=self.out, flush=True)
        return result

    def total(self) -> float:
        return self.clock() - self.started


def drill(dynamodb, table: str, *, at: datetime | None = None, steps: Steps) -> dict:
    """Restore ``table`` as of ``at`` (the latest restorable moment when None) into
    ``<table>-restored``, protect it and count both; return what was found."""
    target = restored_name(table)
    pitr = dynamodb.describe_continuous_backups(TableName=table)[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise RestoreError(f"{table} has no point-in-time recovery to restore from")
    latest = pitr.get("LatestRestorableDateTime")
    point = {"RestoreDateTime": at} if at else {"UseLatestRestorableTime": True}
    steps.run(f"restore {table} as of {at or latest or 'the latest moment'} into {target}",
              lambda: dynamodb.restore_table_to_point_in_time(
                  SourceTableName=table, TargetTableName=target, **point))
    steps.run(f"wait until {target} and its indexes are ACTIVE",
              lambda: wait_active(dynamodb, target))
    steps.run("turn on TTL (expires), point-in-time recovery, deletion protection",
              lambda: protect(dynamodb, target))
    restored = steps.run(f"count {target}", lambda: counts(dynamodb, target))
    live = steps.run(f"count {table}", lambda: counts(dynamodb, table))
    if sum(live.values()) and not sum(restored.values()):
        raise RestoreError(f"{target} is empty while {table} is not: wrong point in time?")
    return {"restored": restored, "live": live, "point": at or latest,
            "protection": protection(dynamodb, target)}


def swap(dynamodb, functions, table: str, function: str, *, steps: Steps) -> dict:
    """Put ``<table>-restored``'s items back under ``table``, the function stopped."""
    source = restored_name(table)
    if not all(protection(dynamodb, source).values()):
        raise RestoreError(f"run the drill first: {source} is not restored and protected")
    before = _concurrency(functions, function)
    steps.run(f"stop {function} (reserved concurrency 0)",
              lambda: functions.put_function_concurrency(
                  FunctionName=function, ReservedConcurrentExecutions=0))
    try:
        got = _put_back(dynamodb, table, source, steps=steps)
    except Exception as exc:
        raise RestoreError(f"{type(exc).__name__}: {exc}. {function} stays stopped "
                           f"(reserved concurrency 0) until a person has looked") from exc
    steps.run(f"start {function} again", lambda: _set_concurrency(functions, function, before))
    return {"counts": got, "protection": protection(dynamodb, table)}


def _put_back(dynamodb, table: str, source: str, *, steps: Steps) -> Counter:
    """Replace ``table`` by a copy of ``source``; its counts, checked against the source's."""
    wanted = steps.run(f"count {source}", lambda: counts(dynamodb, source))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    steps.run(f"back up {table} as {table}-before-swap-{stamp}",
              lambda: _backup(dynamodb, table, f"{table}-before-swap-{stamp}"))
    steps.run(f"turn off deletion protection of {table}, delete it", lambda: _delete(
        dynamodb, table))
    backup = steps.run(f"back up {source}", lambda: _backup(
        dynamodb, source, f"{source}-{stamp}"))
    steps.run(f"restore that backup as {table}", lambda: dynamodb.restore_table_from_backup(
        TargetTableName=table, BackupArn=backup))
    steps.run(f"wait until {table} and its indexes are ACTIVE",
              lambda: wait_active(dynamodb, table))
    steps.run("turn on TTL (expires), point-in-time recovery, deletion protection",
              lambda: protect(dynamodb, table))
    got = steps.run(f"count {table}", lambda: counts(dynamodb, table))
    if got != wanted:
        raise RestoreError(f"{table} holds {dict(got)}, {source} {dict(wanted)}")
    return got


def _concurrency(functions, function: str) -> int | None:
    return functions.get_function_concurrency(FunctionName=function).get(
        "ReservedConcurrentExecutions")


def _set_concurrency(functions, function: str, value: int | None) -> None:
    """Back to what it was (zappa_settings.json's lambda_concurrency, re-applied by
    every ``zappa update`` anyway)."""
    if value is None:
        functions.delete_function_concurrency(FunctionName=function)
    else:
        functions.put_function_concurrency(FunctionName=function,
                                           ReservedConcurrentExecutions=value)


def _backup(dynamodb, table: str, name: str) -> str:
    arn = dynamodb.create_backup(TableName=table, BackupName=name)["BackupDetails"]["BackupArn"]
    for _ in range(WAIT["MaxAttempts"]):
        status = dynamodb.describe_backup(BackupArn=arn)["BackupDescription"][
            "BackupDetails"]["BackupStatus"]
        if status == "AVAILABLE":
            return arn
        time.sleep(WAIT["Delay"])
    raise RestoreError(f"backup {name} still not AVAILABLE")


def _delete(dynamodb, table: str) -> None:
    dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
    dynamodb.delete_table(TableName=table)
    dynamodb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig=WAIT)


def report(found: dict, out=sys.stderr) -> None:
    if found.get("point"):
        print(f"  restored as of {found['point']}", file=out)
    kinds = sorted(set(found.get("restored", {})) | set(found.get("live", {}))
                   | set(found.get("counts", {})))
    for kind in kinds:
        cells = "  ".join(f"{name} {found[name][kind]:>7}"
                          for name in ("restored", "live", "counts") if name in found)
        print(f"  {kind:<6} {cells}", file=out)
    for name, on in found["protection"].items():
        print(f"  {name}: {'on' if on else 'OFF'}", file=out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    parser.add_argument("--at", type=lambda text: datetime.fromisoformat(
        text.replace("Z", "+00:00")), help="the moment to restore to (ISO 8601, UTC)")
    parser.add_argument("--swap", action="store_true",
                        help="put <table>-restored back under the stage's table name")
    args = parser.parse_args(argv)
    import boto3

    settings = stage_settings(args.stage)
    region, table = settings["aws_region"], settings["environment_variables"]["TABLE_NAME"]
    dynamodb = boto3.client("dynamodb", region_name=region)
    steps = Steps()
    try:
        if args.swap:
            found = swap(dynamodb, boto3.client("lambda", region_name=region), table,
                         function_name(args.stage), steps=steps)
        else:
            found = drill(dynamodb, table, at=args.at, steps=steps)
    except RestoreError as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 1
    report(found)
    print(f"{steps.total():.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
