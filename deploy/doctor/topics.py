"""The stage's two SNS topics: SES feedback into the function, alarms out to people.

Both are the operations stack's (brief, decision 2: the feedback subscription is the
stack's, not Zappa's). SNS lists a subscription nobody has confirmed with the
SubscriptionArn ``PendingConfirmation``, and delivers nothing to it.
"""

from __future__ import annotations

from deploy.doctor.function import reattach_command, stack_command
from deploy.doctor.report import fail, ok, warn
from deploy.doctor.stage import Live, Stage

PENDING = "PendingConfirmation"


def feedback_subscription(stage: Stage, live: Live):
    """The feedback topic delivers to the function, confirmed."""
    topic = live.output("FeedbackTopicArn")
    function_arn = live.function["FunctionArn"]
    ours = [s for s in live.subscriptions(topic)
            if s["Protocol"] == "lambda" and s["Endpoint"] == function_arn]
    if not ours:
        return fail(f"{topic.rsplit(':', 1)[-1]} does not deliver to {stage.function}: "
                    f"bounces and complaints are lost: {reattach_command(stage)}")
    if all(s["SubscriptionArn"] == PENDING for s in ours):
        return fail(f"the subscription of {stage.function} is {PENDING}: "
                    f"{reattach_command(stage)}")
    return ok(f"{topic.rsplit(':', 1)[-1]} delivers to {stage.function}")


def alarm_subscription(stage: Stage, live: Live):
    """Someone receives the alarms: the alarm topic has confirmed subscriptions."""
    topic = live.output("AlarmTopicArn")
    subscriptions = live.subscriptions(topic)
    pending = [s for s in subscriptions if s["SubscriptionArn"] == PENDING]
    confirmed = len(subscriptions) - len(pending)
    if pending:  # endpoints are people's addresses: counted, never printed
        return fail(f"{len(pending)} subscription(s) to {topic.rsplit(':', 1)[-1]} not "
                    f"confirmed, so those alarms reach no one: open the email from AWS "
                    f"Notifications and follow its link (aws sns list-subscriptions-by-topic "
                    f"--topic-arn {topic} shows which)")
    if not confirmed:
        return warn(f"nobody subscribes to {topic.rsplit(':', 1)[-1]}: "
                    f"{stack_command(stage, 'AlarmEmail=you@example.org')}, then confirm")
    return ok(f"{confirmed} confirmed subscription(s) to {topic.rsplit(':', 1)[-1]}")
