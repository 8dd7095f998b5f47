"""Leave a stage's SES feedback subscription to the operations stack alone, once.

Before, Zappa's ``events`` subscribed the function to the feedback topic on every
``zappa deploy``, ``update`` and ``schedule``, and each time added to the function's
resource policy an SNS statement with a random 8-character id (zappa/core.py
``create_event_permission``) that nothing removed, besides its own ``sns-<topic>`` one
(zappa/utilities.py ``SNSEventSource.add``). Now the operations stack's
FunctionDeployed=yes pass holds the subscription and its one permission. After the
first ``make update STAGE=<stage>`` of this release (which runs that pass):

    python -m deploy.migrate_feedback prod            # list what Zappa left behind
    python -m deploy.migrate_feedback prod --apply    # remove it

Left behind: the statements for ``sns.amazonaws.com`` named as Zappa names them, and
every subscription of the function to the stage's topic other than the stack's. It
refuses while the stack has no subscription, so the topic always keeps one. Run with
the maintainer's credentials (lambda:GetPolicy, lambda:RemovePermission,
sns:ListSubscriptionsByTopic, sns:Unsubscribe, cloudformation:DescribeStackResource).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from deploy.lambda_runner import function_name, stage_settings

# Zappa's names for the statements its SNS event source added.
RANDOM_ID = re.compile(r"[A-Z0-9]{8}")


def left_behind(lambda_client, sns, *, function: str, topic: str,
                keep: str) -> tuple[list[str], list[str]]:
    """(statement ids, subscription ARNs) Zappa's SNS event source left; ``keep`` is the
    stack's subscription."""
    policy = json.loads(lambda_client.get_policy(FunctionName=function)["Policy"])
    zappas = {f"sns-{topic.rsplit(':', 1)[1]}"}
    statements = [s["Sid"] for s in policy["Statement"]
                  if (s.get("Principal") or {}).get("Service") == "sns.amazonaws.com"
                  and (RANDOM_ID.fullmatch(s["Sid"]) or s["Sid"] in zappas)]
    arn = lambda_client.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    subscriptions = [s["SubscriptionArn"] for page in sns.get_paginator(
        "list_subscriptions_by_topic").paginate(TopicArn=topic) for s in page["Subscriptions"]
        if s["Protocol"] == "lambda" and s["Endpoint"].split(":")[:7] == arn.split(":")[:7]
        and s["SubscriptionArn"] != keep]
    return statements, subscriptions


def remove(lambda_client, sns, *, function: str, statements: list[str],
           subscriptions: list[str]) -> None:
    for sid in statements:
        lambda_client.remove_permission(FunctionName=function, StatementId=sid)
    for arn in subscriptions:
        sns.unsubscribe(SubscriptionArn=arn)


def stack_subscription(cloudformation, stage: str) -> str:
    """The subscription the operations stack made (its FunctionDeployed=yes pass)."""
    try:
        found = cloudformation.describe_stack_resource(
            StackName=f"esim-tracker-{stage}-operations",
            LogicalResourceId="FeedbackSubscription")["StackResourceDetail"]
    except cloudformation.exceptions.ClientError:
        found = {}
    if not found.get("PhysicalResourceId", "").startswith("arn:"):
        raise SystemExit("the operations stack has no feedback subscription yet: run its "
                         "FunctionDeployed=yes pass first (make update STAGE=" + stage + ")")
    return found["PhysicalResourceId"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("dev", "prod"))
    parser.add_argument("--apply", action="store_true", help="remove what is listed")
    args = parser.parse_args(argv)
    import boto3

    session = boto3.session.Session(region_name=stage_settings(args.stage)["aws_region"])
    lambda_client, sns = session.client("lambda"), session.client("sns")
    function = function_name(args.stage)
    topic = stage_settings(args.stage)["environment_variables"]["FEEDBACK_TOPIC_ARN"]
    keep = stack_subscription(session.client("cloudformation"), args.stage)
    statements, subscriptions = left_behind(lambda_client, sns, function=function,
                                            topic=topic, keep=keep)
    for sid in statements:
        print(f"statement {sid} (sns.amazonaws.com, Zappa's)")
    for arn in subscriptions:
        print(f"subscription {arn} (not the stack's {keep})")
    if args.apply:
        remove(lambda_client, sns, function=function, statements=statements,
               subscriptions=subscriptions)
        print(f"removed {len(statements)} statements, {len(subscriptions)} subscriptions")
    elif statements or subscriptions:
        print("run again with --apply to remove them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
