"""The table: items expire, point-in-time recovery is on, nobody can delete it by mistake.

The operations stack declares all three; a restore (which carries none of them over) or
a hand edit can lose them, and moto's CloudFormation ignores the first two, so only a
live read tells.
"""

from __future__ import annotations

import functools

from botocore.exceptions import ClientError

from deploy.doctor.function import stack_command
from deploy.doctor.report import fail, ok
from deploy.doctor.stage import Live, Missing, Stage, not_found

# The attribute tracker/store.py writes an item's expiry to (and create_table, and
# deploy/operations.yaml's TimeToLiveSpecification, name).
TTL_ATTRIBUTE = "expires"


def _table(stage: Stage) -> str:
    return stage.env["TABLE_NAME"]


def _guarded(read):
    """A table that does not exist is said once, not as three different failures."""

    @functools.wraps(read)
    def check(stage: Stage, live: Live):
        try:
            return read(stage, live)
        except ClientError as error:
            if not_found(error):
                raise Missing(f"no table {_table(stage)}") from error
            raise

    return check


@_guarded
def table_ttl(stage: Stage, live: Live):
    """Items expire on the attribute the code writes."""
    found = live.client("dynamodb").describe_time_to_live(
        TableName=_table(stage))["TimeToLiveDescription"]
    if found.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"} \
            and found.get("AttributeName") == TTL_ATTRIBUTE:
        return ok(f"{_table(stage)} expires items on {TTL_ATTRIBUTE}")
    return fail(f"TTL of {_table(stage)} is {found.get('TimeToLiveStatus')} on "
                f"{found.get('AttributeName')}, so nothing is ever deleted: aws dynamodb "
                f"update-time-to-live --table-name {_table(stage)} --time-to-live-specification "
                f"Enabled=true,AttributeName={TTL_ATTRIBUTE}")


@_guarded
def table_recovery(stage: Stage, live: Live):
    """Point-in-time recovery is on."""
    found = live.client("dynamodb").describe_continuous_backups(
        TableName=_table(stage))["ContinuousBackupsDescription"]
    status = (found.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus")
    if status == "ENABLED":
        return ok(f"{_table(stage)} can be restored to any second of the last 35 days")
    return fail(f"point-in-time recovery of {_table(stage)} is {status}: aws dynamodb "
                f"update-continuous-backups --table-name {_table(stage)} "
                f"--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true")


@_guarded
def table_protection(stage: Stage, live: Live):
    """Deletion protection is on."""
    found = live.client("dynamodb").describe_table(TableName=_table(stage))["Table"]
    if found.get("DeletionProtectionEnabled"):
        return ok(f"{_table(stage)} refuses deletion")
    return fail(f"{_table(stage)} can be deleted by one call: aws dynamodb update-table "
                f"--table-name {_table(stage)} --deletion-protection-enabled (or "
                f"{stack_command(stage)})")
