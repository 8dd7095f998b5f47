"""Send the events in a stage's dead-letter queue to its function again, once each.

    python -m deploy.redrive prod            # list what waits, send nothing
    python -m deploy.redrive prod --send     # invoke the function with each, then delete

The queue holds Lambda's on-failure records (deploy/operations.yaml): each names the
event that failed every retry (``requestPayload``) and why (``responsePayload``). Both
kinds of event are safe to deliver again: a late schedule event sends only what is due
and never twice (CONTRACT.md), and SES feedback is idempotent. A record is deleted only
after Lambda accepted the new asynchronous invocation; one that fails again comes back.
"""

from __future__ import annotations

import argparse
import json
import sys

from deploy.lambda_runner import function_name, stage_settings


def failed_events(sqs, queue_url: str, *, hide_seconds: int = 300):
    """Yield (receipt handle, record) for each message, hidden while it is handled."""
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                    VisibilityTimeout=hide_seconds, WaitTimeSeconds=1)
        messages = batch.get("Messages", [])
        if not messages:
            return
        for message in messages:
            yield message["ReceiptHandle"], json.loads(message["Body"])


def redrive(sqs, lambda_client, *, queue_url: str, function: str, send: bool) -> list[str]:
    """Re-invoke ``function`` with every failed event (when ``send``); one line on each."""
    lines = []
    # Listing hides each message for 30 s too: the only way SQS lets one read them all.
    for receipt, record in failed_events(sqs, queue_url, hide_seconds=300 if send else 30):
        event = record.get("requestPayload", record)
        error = (record.get("responsePayload") or {}).get("errorType", "?")
        kind = ("schedule" if event.get("detail-type") == "Scheduled Event"
                else "sns" if event.get("Records") else "other")
        lines.append(f"{kind} event, failed with {error}")
        if send:
            lambda_client.invoke(FunctionName=function, InvocationType="Event",
                                 Payload=json.dumps(event).encode())
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    parser.add_argument("--send", action="store_true", help="invoke and delete, not just list")
    args = parser.parse_args(argv)
    import boto3

    region = stage_settings(args.stage)["aws_region"]
    name = function_name(args.stage)
    sqs = boto3.client("sqs", region_name=region)
    url = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    lines = redrive(sqs, boto3.client("lambda", region_name=region), queue_url=url,
                    function=name, send=args.send)
    print("\n".join(lines) or "the dead-letter queue is empty", file=sys.stderr)
    print(f"{len(lines)} event(s) {'sent again' if args.send else 'waiting'}", file=sys.stderr)


if __name__ == "__main__":
    main()
