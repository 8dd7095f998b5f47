"""The follow-up job's EventBridge rule, named and made by Zappa (``zappa schedule``)."""

from __future__ import annotations

from deploy.doctor.report import fail, ok
from deploy.doctor.stage import Live, Stage


def schedule_rule(stage: Stage, live: Live):
    """The rule exists, is ENABLED and fires at the settings' rate."""
    rule, expression = live.rule, stage.schedule["expression"]
    if rule is None:
        return fail(f"{stage.rule} is missing, so the job never runs: "
                    f"{stage.zappa('schedule')}")
    if rule.get("State") != "ENABLED":
        if stage.schedule.get("enabled", True) is False:
            return fail(f"{stage.rule} is {rule.get('State')}: the job is paused in the "
                        f'settings ("enabled": false); to resume set it true, commit, '
                        f"{stage.zappa('schedule')}")
        return fail(f"{stage.rule} is {rule.get('State')}, so the job never runs: "
                    f"aws events enable-rule --name {stage.rule}")
    if rule.get("ScheduleExpression") != expression:
        return fail(f"{stage.rule} fires at {rule.get('ScheduleExpression')}, the settings "
                    f"say {expression}: {stage.zappa('schedule')}")
    return ok(f"{stage.rule} ENABLED, {expression}")


def schedule_target(stage: Stage, live: Live):
    """The rule invokes this stage's function."""
    if live.rule is None:
        return fail(f"no rule {stage.rule}: {stage.zappa('schedule')}")
    function_arn = live.function["FunctionArn"]
    targets = live.client("events").list_targets_by_rule(Rule=stage.rule)["Targets"]
    if any(target["Arn"] == function_arn for target in targets):
        return ok(f"{stage.rule} invokes {stage.function}")
    return fail(f"{stage.rule} does not invoke {stage.function} "
                f"({len(targets)} other target(s)): {stage.zappa('schedule')}")
