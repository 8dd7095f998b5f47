"""Remove everything the smoke run made, whatever step it stopped at, and say what is left.

Each removal stands alone: one that fails is reported with the command that finishes it
by hand, and the others still run. What the operations stack keeps on deletion
(``DeletionPolicy: Retain``: the table, the log group, and any other) is deleted after
it; the table's deletion protection is turned off first, for this stage's table only.
The deploy bucket is shared by every stage and stays; Zappa deletes its uploads itself.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
from botocore.exceptions import ClientError

from deploy.doctor.stage import Stage, not_found
from deploy.smoke.platform import SmokeFailed


def remove(platform, stage: Stage, session: boto3.Session, say: Callable[[str], None]) -> list[str]:
    """Undeploy the function, delete the stack and what it retains, the secrets and the
    role; return the commands still needed by hand (empty when nothing is left)."""
    left = []
    steps = (
        (f"zappa undeploy {stage.name}", lambda: _undeploy(platform, stage, session)),
        (f"aws cloudformation delete-stack --stack-name {stage.stack}",
         lambda: _delete_stack(session, stage)),
        (f"aws dynamodb delete-table --table-name {stage.env['TABLE_NAME']}",
         lambda: _delete_table(session, stage)),
        (f"aws logs delete-log-group --log-group-name /aws/lambda/{stage.function}",
         lambda: _ignore_missing(lambda: session.client("logs").delete_log_group(
             logGroupName=f"/aws/lambda/{stage.function}"))),
        (f"aws sqs delete-queue --queue-url <{stage.function}-dlq>",
         lambda: _delete_queue(session, f"{stage.function}-dlq")),
        (f"aws ssm delete-parameters --names <{stage.env['SECRETS_PATH']}*>",
         lambda: _delete_secrets(session, stage.env["SECRETS_PATH"])),
        (f"aws iam delete-role --role-name {stage.function}-ZappaLambdaExecutionRole",
         lambda: _delete_role(session, f"{stage.function}-ZappaLambdaExecutionRole")),
    )
    for command, step in steps:
        try:
            step()
        except (ClientError, SmokeFailed) as error:
            say(f"smoke: could not finish {command}: {str(error).splitlines()[0][:200]}")
            left.append(command)
    return left


def _ignore_missing(call) -> None:
    try:
        call()
    except ClientError as error:
        if not not_found(error):
            raise


def _undeploy(platform, stage: Stage, session: boto3.Session) -> None:
    try:
        session.client("lambda").get_function(FunctionName=stage.function)
    except ClientError as error:
        if not_found(error):
            return  # never deployed, or gone already
        raise
    platform.zappa("undeploy", stage.name, "-s", str(stage.settings_file), "--yes",
                   "--remove-logs")


def _delete_stack(session: boto3.Session, stage: Stage) -> None:
    cfn = session.client("cloudformation")
    try:
        cfn.describe_stacks(StackName=stage.stack)
    except ClientError:
        return
    cfn.delete_stack(StackName=stage.stack)
    cfn.get_waiter("stack_delete_complete").wait(StackName=stage.stack,
                                                 WaiterConfig={"Delay": 5, "MaxAttempts": 120})


def _delete_table(session: boto3.Session, stage: Stage) -> None:
    ddb, table = session.client("dynamodb"), stage.env["TABLE_NAME"]

    def delete():
        ddb.update_table(TableName=table, DeletionProtectionEnabled=False)
        ddb.get_waiter("table_exists").wait(TableName=table)  # ACTIVE again
        ddb.delete_table(TableName=table)

    _ignore_missing(delete)


def _delete_queue(session: boto3.Session, name: str) -> None:
    sqs = session.client("sqs")
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError:
        return
    sqs.delete_queue(QueueUrl=url)


def _delete_secrets(session: boto3.Session, path: str) -> None:
    ssm = session.client("ssm")
    names = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path.rstrip("/"), Recursive=True) for p in page["Parameters"]]
    for start in range(0, len(names), 10):  # DeleteParameters takes ten at a time
        ssm.delete_parameters(Names=names[start:start + 10])


def _delete_role(session: boto3.Session, role: str) -> None:
    iam = session.client("iam")
    try:
        policies = iam.list_role_policies(RoleName=role)["PolicyNames"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return
        raise
    for policy in policies:
        iam.delete_role_policy(RoleName=role, PolicyName=policy)
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=role)


def leftovers(stage: Stage, session: boto3.Session) -> list[str]:
    """Anything of the stage that still exists, read afresh (the run's last word)."""
    found = []
    probes = {
        f"function {stage.function}": lambda: session.client("lambda").get_function(
            FunctionName=stage.function),
        f"table {stage.env['TABLE_NAME']}": lambda: session.client("dynamodb").describe_table(
            TableName=stage.env["TABLE_NAME"]),
        f"rule {stage.rule}": lambda: session.client("events").describe_rule(Name=stage.rule),
        f"role {stage.function}-ZappaLambdaExecutionRole": lambda: session.client(
            "iam").get_role(RoleName=f"{stage.function}-ZappaLambdaExecutionRole"),
        f"queue {stage.function}-dlq": lambda: session.client("sqs").get_queue_url(
            QueueName=f"{stage.function}-dlq"),
    }
    for what, probe in probes.items():
        try:
            probe()
        except ClientError:
            continue
        found.append(what)
    for stack in (stage.stack, stage.function):  # ours, and Zappa's API Gateway stack
        try:
            status = session.client("cloudformation").describe_stacks(
                StackName=stack)["Stacks"][0]["StackStatus"]
        except ClientError:
            continue
        if status != "DELETE_COMPLETE":
            found.append(f"stack {stack}")
    secrets = session.client("ssm").get_parameters_by_path(
        Path=stage.env["SECRETS_PATH"].rstrip("/"), Recursive=True)["Parameters"]
    found += [f"parameter {p['Name']}" for p in secrets]
    return found
