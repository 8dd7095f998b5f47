"""The function's resource policy: who may invoke it, and how big it has grown.

Statements are found by what they grant (principal, action, source ARN), never by their
ids: EventBridge's comes from Zappa with a random id, the SNS one from the operations
stack with CloudFormation's.
"""

from __future__ import annotations

import re

from deploy.doctor.report import fail, ok, warn
from deploy.doctor.stage import Live, Stage

# Lambda refuses a resource policy over 20 KB, and the limit cannot be raised
# (repost.aws/knowledge-center/lambda-resource-based-policy-size-error).
LIMIT = 20 * 1024
WARN_AT, FAIL_AT = LIMIT // 4, LIMIT * 3 // 4
# Zappa's create_event_permission names each statement with 8 random capitals and digits
# (zappa/core.py); for SNS, nothing ever removes them (audit 2026-12-04, finding 5).
ZAPPA_RANDOM_SID = re.compile(r"[A-Z0-9]{8}")


def grants(statement: dict, service: str, source_arn: str) -> bool:
    """Tell whether a statement lets ``service`` invoke the function for ``source_arn``."""
    principal = statement.get("Principal")
    principal = principal.get("Service") if isinstance(principal, dict) else principal
    actions = statement.get("Action")
    actions = [actions] if isinstance(actions, str) else actions or []
    sources = [arn for test in ("ArnLike", "ArnEquals", "StringEquals")
               for arn in [((statement.get("Condition") or {}).get(test) or {})
                           .get("AWS:SourceArn")] if arn]
    return (statement.get("Effect") == "Allow" and principal == service
            and any(a in ("lambda:InvokeFunction", "lambda:*") for a in actions)
            and source_arn in sources)


def schedule_permission(stage: Stage, live: Live):
    """EventBridge may invoke the function for the follow-up job's rule."""
    if live.rule is None:
        return fail(f"no rule {stage.rule} to grant: {stage.zappa('schedule')}")
    if any(grants(s, "events.amazonaws.com", live.rule["Arn"]) for s in live.statements):
        return ok(f"events.amazonaws.com may invoke {stage.function} for {stage.rule}")
    return fail(f"EventBridge may not invoke {stage.function}: the job never runs: "
                f"{stage.zappa('schedule')}")


def feedback_permission(stage: Stage, live: Live):
    """SNS may invoke the function for the stage's feedback topic."""
    topic = live.output("FeedbackTopicArn")
    if any(grants(s, "sns.amazonaws.com", topic) for s in live.statements):
        return ok(f"sns.amazonaws.com may invoke {stage.function} for "
                  f"{topic.rsplit(':', 1)[-1]}")
    from deploy.doctor.function import reattach_command

    return fail(f"SNS may not invoke {stage.function} for {topic}: bounces and complaints "
                f"are dropped: {reattach_command(stage)}")


def policy_size(stage: Stage, live: Live):
    """The resource policy is well under Lambda's 20 KB."""
    size = len(live.policy.encode())
    count = len(live.statements)
    told = f"{size:,} bytes in {count} statement(s), of Lambda's {LIMIT:,}"
    if size >= FAIL_AT:
        return fail(f"{told}: an update that adds one more fails half-way; remove the "
                    f"statements the next line lists")
    if size >= WARN_AT:
        return warn(f"{told}: growing; remove the statements the next line lists")
    return ok(told)


def stale_permissions(stage: Stage, live: Live):
    """No SNS statements left by old Zappa deploys (random ids, never removed)."""
    topic = live.outputs.get("FeedbackTopicArn", "")
    sns = [s for s in live.statements
           if (s.get("Principal") or {}).get("Service") == "sns.amazonaws.com"]
    random = [s for s in sns if ZAPPA_RANDOM_SID.fullmatch(s.get("Sid", ""))]
    if not any(grants(s, "sns.amazonaws.com", topic) for s in sns if s not in random):
        # Until the stack grants the topic itself, one of them is still needed.
        needed = next((s for s in random if grants(s, "sns.amazonaws.com", topic)), None)
        random = [s for s in random if s is not needed]
    if not random:
        return ok("no SNS statements left by old Zappa deploys")
    sids = " ".join(s["Sid"] for s in random)
    return warn(f"{len(random)} SNS statement(s) left by old Zappa deploys: for SID in "
                f"{sids}; do aws lambda remove-permission --function-name {stage.function} "
                f"--statement-id $SID; done")

