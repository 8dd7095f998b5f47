"""Send a stage's failed scheduled runs and SES feedback to its function again, once each.

    python -m deploy.redrive prod            # list what waits, send nothing
    python -m deploy.redrive prod --send     # send this stage's runs and feedback again

The queue holds Lambda's on-failure records (deploy/operations.yaml): each names the
event that failed every retry (``requestPayload``) and why (``responsePayload``). Only
two kinds are sent again, both safe to repeat: a scheduled event of this stage's own
rule, as EventBridge writes it (a late run sends only what is due and never twice:
shared/CONTRACT.md, ``run``), and an SNS delivery whose every record comes from this
stage's feedback topic (applying feedback twice changes nothing). Zappa's handler would
run another rule's function, a ``command``, even ``raw_command`` Python, so anything
else is listed with the reason and left in the queue for a person. A record is deleted
only after Lambda accepted the new asynchronous invocation; one that fails again comes
back. Run with the maintainer's credentials (not the function's role).
"""

from __future__ import annotations

import argparse
import json
import sys

from deploy.lambda_runner import function_name, stage_settings

# An EventBridge scheduled event has exactly these keys; Zappa's handler looks for its
# own (command, raw_command, manage, httpMethod …) before and after it.
SCHEDULE_KEYS = frozenset({"version", "id", "detail-type", "source", "account", "time",
                           "region", "resources", "detail"})
# Keys of an SNS message that Zappa would run as a function (handlers/entry.py refuses
# them too).
RUNNABLE = frozenset({"command", "raw_command", "manage"})


def schedule_rule_names(stage: str) -> list[str]:
    """The EventBridge rule names Zappa gives the stage's scheduled events."""
    from zappa.core import Zappa

    lambda_name = function_name(stage)
    names = []
    for event in stage_settings(stage).get("events", []):
        expressions = event.get("expressions") or (
            [event["expression"]] if "expression" in event else [])
        for index, _ in enumerate(expressions):
            # Zappa's own naming (core.Zappa.get_scheduled_event_name); ``self`` is only
            # used for its static helpers.
            names.append(Zappa.get_scheduled_event_name(
                Zappa, event, event["function"], lambda_name, index))
    return names


def kind_of(record, *, function_arn: str, rule_arns: list[str], topic_arn: str
            ) -> tuple[str, str]:
    """("schedule" | "sns" | "other", why) for one on-failure record."""
    if not isinstance(record, dict):
        return "other", "not an on-failure record"
    source = (record.get("requestContext") or {}).get("functionArn", "")
    if source != function_arn and not source.startswith(function_arn + ":"):  # a qualifier
        return "other", "not a failure of this stage's function"
    event = record.get("requestPayload")
    if not isinstance(event, dict):
        return "other", "no event"
    if event.get("detail-type") == "Scheduled Event":
        if set(event) - SCHEDULE_KEYS:
            return "other", f"scheduled event with other keys: {sorted(set(event) - SCHEDULE_KEYS)}"
        if event.get("source") != "aws.events" or event.get("detail") not in ({}, None):
            return "other", "not an EventBridge scheduled event"
        if event.get("resources") not in [[arn] for arn in rule_arns]:
            return "other", "scheduled event of another rule"
        return "schedule", "this stage's schedule"
    if set(event) == {"Records"}:
        return _sns_kind(event["Records"], topic_arn)
    return "other", f"unknown event with keys {sorted(event)[:5]}"


def _sns_kind(records, topic_arn: str) -> tuple[str, str]:
    if not isinstance(records, list) or not records:
        return "other", "no records"
    for record in records:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict) or record.get("EventSource") != "aws:sns":
            return "other", "not an SNS record"
        if sns.get("TopicArn") != topic_arn:
            return "other", "SNS record of another topic"
        try:
            message = json.loads(sns.get("Message") or "")
        except ValueError:
            message = None
        if isinstance(message, dict) and RUNNABLE & set(message):
            return "other", "SNS message naming something to run"
    return "sns", "this stage's SES feedback"


def failed_events(sqs, queue_url: str, *, hide_seconds: int = 300):
    """Yield (receipt handle, record) for each message, hidden while it is handled."""
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                    VisibilityTimeout=hide_seconds, WaitTimeSeconds=1)
        messages = batch.get("Messages", [])
        if not messages:
            return
        for message in messages:
            try:
                record = json.loads(message["Body"])
            except ValueError:
                record = None
            yield message["ReceiptHandle"], record


def redrive(sqs, lambda_client, *, queue_url: str, function: str, function_arn: str,
            rule_arns: list[str], topic_arn: str, send: bool) -> list[str]:
    """Re-invoke ``function`` with this stage's failed runs and feedback (when ``send``);
    one line on each record, and every other record left in the queue."""
    lines, left = [], []
    # Listing hides each message for 30 s too: the only way SQS lets one read them all.
    for receipt, record in failed_events(sqs, queue_url, hide_seconds=300 if send else 30):
        kind, why = kind_of(record, function_arn=function_arn, rule_arns=rule_arns,
                            topic_arn=topic_arn)
        error = ((record or {}).get("responsePayload") or {}) if isinstance(record, dict) else {}
        failed_with = error.get("errorType", "?") if isinstance(error, dict) else "?"
        if kind == "other":
            lines.append(f"LEFT for a person: {why} (failed with {failed_with})")
            left.append(receipt)
            continue
        lines.append(f"{kind} event, failed with {failed_with}")
        if send:
            lambda_client.invoke(FunctionName=function, InvocationType="Event",
                                 Payload=json.dumps(record["requestPayload"]).encode())
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
    if send:
        for receipt in left:  # visible again at once, for whoever looks next
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt,
                                          VisibilityTimeout=0)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    parser.add_argument("--send", action="store_true",
                        help="invoke and delete this stage's runs and feedback, not just list")
    args = parser.parse_args(argv)
    import boto3

    region = stage_settings(args.stage)["aws_region"]
    name = function_name(args.stage)
    sqs, functions = boto3.client("sqs", region_name=region), boto3.client(
        "lambda", region_name=region)
    function_arn = functions.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    partition, account = function_arn.split(":")[1], function_arn.split(":")[4]
    rule_arns = [f"arn:{partition}:events:{region}:{account}:rule/{rule}"
                 for rule in schedule_rule_names(args.stage)]
    topic_arn = f"arn:{partition}:sns:{region}:{account}:{name}-ses-feedback"
    url = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    lines = redrive(sqs, functions, queue_url=url, function=name, function_arn=function_arn,
                    rule_arns=rule_arns, topic_arn=topic_arn, send=args.send)
    print("\n".join(lines) or "the dead-letter queue is empty", file=sys.stderr)
    left = sum(line.startswith("LEFT") for line in lines)
    done = len(lines) - left
    print(f"{done} event(s) {'sent again' if args.send else 'to send again'}, "
          f"{left} left for a person", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
