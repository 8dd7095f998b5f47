"""The restore drill and the cut-over (deploy/restore.py), on moto's server.

moto stops short of real DynamoDB here: its point-in-time restore copies the table as it
is now (whatever the moment asked for), and its restores are ACTIVE at once where AWS's
take 20 minutes or more. What it does hold: the restored table gets no TTL, no
point-in-time recovery and no deletion protection of its own, a protected table refuses
deletion, and a backup restores every item.
"""

from __future__ import annotations

import io

import pytest

from deploy import restore
from tests.helpers import submit
from tests.jobs import seed_due

FUNCTION = "esim-tracker-dev"


@pytest.fixture
def dynamodb(app, table):
    """The emulated table as the stack leaves it (PITR on, TTL on, protected)."""
    from tracker import aws

    client = aws.client("dynamodb")
    name = app.config["TABLE_NAME"]
    client.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True})
    client.update_table(TableName=name, DeletionProtectionEnabled=True)
    return client


@pytest.fixture
def functions(app):
    from tests.test_package import create_function
    from tracker import aws

    client = aws.client("lambda")
    create_function(client, FUNCTION, {})
    client.put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=5)
    return client


@pytest.fixture
def stored(client, postman):
    """Requests, their abuse counters and stats counters, and a suppression."""
    for n in range(3):
        submit(client, email=f"traveller{n}@example.net")
    seed_due(postman.store, 4)
    # A stats counter item, as an answer through an emailed link writes it (submissions
    # count nothing since issue 19).
    postman.store.table.put_item(Item={"pk": "STAT2#azercell#call#2026-09", "f_cancelled": 1})
    return postman


def quiet_steps() -> restore.Steps:
    return restore.Steps(out=io.StringIO())


def test_the_drill_restores_a_protected_copy_and_counts_it_beside_the_live_table(
        app, dynamodb, stored):
    name = app.config["TABLE_NAME"]
    live = restore.counts(dynamodb, name)
    assert live["REQ"] == 7 and live["STAT2"] and live["LIMIT"]

    found = restore.drill(dynamodb, name, steps=quiet_steps())

    assert found["restored"] == found["live"] == live
    assert found["protection"] == {"ttl": True, "pitr": True, "deletion protection": True}
    described = dynamodb.describe_table(TableName=f"{name}-restored")["Table"]
    assert {i["IndexName"] for i in described["GlobalSecondaryIndexes"]} == {"due", "by_address"}
    assert restore.counts(dynamodb, name) == live  # the live table is untouched


def test_the_drill_refuses_a_table_without_point_in_time_recovery(app, table):
    from tracker import aws

    with pytest.raises(restore.RestoreError, match="point-in-time recovery"):
        restore.drill(aws.client("dynamodb"), app.config["TABLE_NAME"], steps=quiet_steps())


def test_the_cut_over_puts_the_restored_items_back_under_the_stages_table_name(
        app, dynamodb, functions, stored):
    name = app.config["TABLE_NAME"]
    before_damage = restore.counts(dynamodb, name)
    restore.drill(dynamodb, name, steps=quiet_steps())
    # The damage the restore undoes: requests deleted by mistake.
    for item in dynamodb.scan(TableName=name)["Items"]:
        if item["pk"]["S"].startswith("REQ#"):
            dynamodb.delete_item(TableName=name, Key={"pk": item["pk"]})
    assert restore.counts(dynamodb, name)["REQ"] == 0

    stopped = []

    class Watching(restore.Steps):
        def run(self, what, action):
            if what.startswith("count"):  # the function is stopped while it happens
                stopped.append(functions.get_function_concurrency(
                    FunctionName=FUNCTION).get("ReservedConcurrentExecutions"))
            return super().run(what, action)

    found = restore.swap(dynamodb, functions, name, FUNCTION, steps=Watching(out=io.StringIO()))

    assert found["counts"] == before_damage == restore.counts(dynamodb, name)
    assert found["protection"] == {"ttl": True, "pitr": True, "deletion protection": True}
    assert stopped and set(stopped) == {0}
    assert functions.get_function_concurrency(FunctionName=FUNCTION)[
        "ReservedConcurrentExecutions"] == 5  # started again as it was
    backups = [b["BackupName"] for b in dynamodb.list_backups(TableName=name)[
        "BackupSummaries"]]
    assert any(b.startswith(f"{name}-before-swap-") for b in backups)  # the damaged one


def test_a_cut_over_that_does_not_add_up_leaves_the_function_stopped(
        app, dynamodb, functions, stored):
    name = app.config["TABLE_NAME"]
    restore.drill(dynamodb, name, steps=quiet_steps())

    class LosingAnItem(restore.Steps):
        def run(self, what, action):
            result = super().run(what, action)
            if what.startswith("wait until") and name in what and "restored" not in what:
                [first, *_] = dynamodb.scan(TableName=name)["Items"]
                dynamodb.delete_item(TableName=name, Key={"pk": first["pk"]})
            return result

    with pytest.raises(restore.RestoreError, match="stays stopped"):
        restore.swap(dynamodb, functions, name, FUNCTION, steps=LosingAnItem(out=io.StringIO()))
    assert functions.get_function_concurrency(FunctionName=FUNCTION)[
        "ReservedConcurrentExecutions"] == 0


def test_the_cut_over_refuses_to_start_without_a_protected_restored_table(
        app, dynamodb, functions, stored):
    from tracker import aws

    name = app.config["TABLE_NAME"]
    live = restore.counts(dynamodb, name)
    aws.client("dynamodb").restore_table_to_point_in_time(
        SourceTableName=name, TargetTableName=f"{name}-restored",
        UseLatestRestorableTime=True)  # restored, but nothing turned on

    with pytest.raises(restore.RestoreError, match="drill first"):
        restore.swap(dynamodb, functions, name, FUNCTION, steps=quiet_steps())
    assert functions.get_function_concurrency(FunctionName=FUNCTION)[
        "ReservedConcurrentExecutions"] == 5
    assert restore.counts(dynamodb, name) == live


def test_a_protected_table_refuses_deletion_until_the_protection_is_off(app, dynamodb):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        dynamodb.delete_table(TableName=app.config["TABLE_NAME"])
