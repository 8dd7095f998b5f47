"""Operations: secrets from SSM, the metrics lines, the operations template, the settings.

Against the session's moto server (SSM, Lambda) and offline (cfn-lint, Zappa's own
settings loader); nothing here reaches AWS.
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime

import pytest
from cfnlint.decode import decode

from deploy import lambda_runner, secret
from tests.conftest import ACCOUNT, ROOT
from tests.helpers import emf_lines
from tracker import config, metrics

TEMPLATE = ROOT / "deploy" / "operations.yaml"
STAGES = ("dev", "prod")


@pytest.fixture
def ssm(moto_endpoint):
    """An empty emulated SSM, and no secrets cached from another test."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    config.stored_secrets.cache_clear()
    from tracker import aws

    yield aws.client("ssm")
    config.stored_secrets.cache_clear()


# --- Secrets ------------------------------------------------------------------------

def test_app_reads_its_three_secrets_from_its_stages_ssm_path(ssm, monkeypatch):
    secret.ensure(ssm, "/esim-tracker/prod/")
    secret.rotate(ssm, "/esim-tracker/prod/", now=datetime.now(UTC))
    ssm.put_parameter(Name="/esim-tracker/dev/SECRET_KEY", Value="dev-key",
                      Type="SecureString")
    stored = {name: ssm.get_parameter(Name=f"/esim-tracker/prod/{name}", WithDecryption=True)
              ["Parameter"]["Value"] for name in config.STORED_SECRETS}
    monkeypatch.setenv("SECRETS_PATH", "/esim-tracker/prod/")
    monkeypatch.setenv("SECRET_KEY", "a-stale-variable-loses")
    settings = config.from_environment()
    assert settings["SECRET_KEY"] == stored["SECRET_KEY"] != "dev-key"
    # The published key verifies; the mark that says so is deploy.secret's alone.
    [published] = stored["SECRET_KEY_FALLBACKS"].split(",")
    assert settings["SECRET_KEY_FALLBACKS"] == [published.removesuffix(":next")]
    assert len(stored["ADDRESS_PEPPER"]) >= 32


def test_secrets_are_read_once_per_process(ssm):
    ssm.put_parameter(Name="/esim-tracker/dev/SECRET_KEY", Value="first", Type="SecureString")
    assert config.stored_secrets("/esim-tracker/dev/")["SECRET_KEY"] == "first"
    ssm.put_parameter(Name="/esim-tracker/dev/SECRET_KEY", Value="second",
                      Type="SecureString", Overwrite=True)
    assert config.stored_secrets("/esim-tracker/dev/")["SECRET_KEY"] == "first"


def test_secret_command_creates_once_never_replaces_and_rotation_keeps_the_old_key(ssm):
    path = "/esim-tracker/prod/"
    assert secret.ensure(ssm, path) == {"SECRET_KEY": True, "ADDRESS_PEPPER": True}
    first = config.stored_secrets.__wrapped__(path)
    assert secret.ensure(ssm, path) == {"SECRET_KEY": False, "ADDRESS_PEPPER": False}
    assert config.stored_secrets.__wrapped__(path) == first
    assert ssm.get_parameter(Name=path + "SECRET_KEY")["Parameter"]["Type"] == "SecureString"
    secret.rotate(ssm, path, now=datetime.now(UTC))
    after = config.stored_secrets.__wrapped__(path)
    # Published, not promoted: the key that signs stays until --promote.
    assert after["SECRET_KEY"] == first["SECRET_KEY"]
    assert config.ring_keys(after["SECRET_KEY_FALLBACKS"]) != [first["SECRET_KEY"]]
    assert after["ADDRESS_PEPPER"] == first["ADDRESS_PEPPER"]  # a key rotation keeps it


def test_secret_command_adopts_the_key_an_older_deploy_left_on_the_function(ssm):
    from tests.test_package import create_function
    from tracker import aws

    functions = aws.client("lambda")
    assert secret.legacy_key(functions, "esim-tracker-prod") is None  # not deployed yet
    create_function(functions, "esim-tracker-prod", {"SECRET_KEY": "old-key"})
    adopted = secret.legacy_key(functions, "esim-tracker-prod")
    secret.ensure(ssm, "/esim-tracker/prod/", adopt=adopted)
    stored = config.stored_secrets.__wrapped__("/esim-tracker/prod/")
    # Links already emailed still verify; suppressions keep their keys.
    assert stored == {"SECRET_KEY": "old-key", "ADDRESS_PEPPER": "old-key"}


def test_no_random_key_for_a_process_that_would_talk_to_real_aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "SECRET_KEY", "SECRETS_PATH"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(config.MissingSecretError, match="SECRETS_PATH"):
        config.check(config.from_environment())
    # The sandbox and the tests may have a throwaway key, and so may moto's users.
    for settings in ({"LOCAL_MODE": True}, {"TESTING": True}):
        checked = dict(settings)
        config.check(checked)
        assert len(checked["SECRET_KEY"]) == 64
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    checked = {}
    config.check(checked)
    assert checked["SECRET_KEY"]


def test_on_lambda_a_missing_secret_names_the_command_that_creates_it(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")
    for name in ("MAIL_FROM", "BASE_URL"):
        monkeypatch.setenv(name, "set")
    with pytest.raises(config.MissingSecretError, match="deploy.secret"):
        config.check({})


def test_importing_the_app_never_imports_the_sandbox_runner(moto_endpoint):
    env = dict(os.environ, LOCAL_MODE="1", AWS_ENDPOINT_URL=moto_endpoint)
    done = subprocess.run(
        [sys.executable, "-c", "import sys, app; "
         "assert 'tracker.local' not in sys.modules, 'circle'; "
         "assert 'local.outbox' in app.app.view_functions"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- Metrics ------------------------------------------------------------------------

def test_job_run_emits_its_counts_as_one_emf_line(monkeypatch, capsys):
    import app  # noqa: F401 - built before the test pretends to be on Lambda
    import handlers.followup
    from tracker import followups

    result = {"sent": 3, "failed": 1, "deferred": 2, "retry": 0, "skipped": 0,
              "suppressed": 0, "errors": 2, "quarantined": 1, "paused": True,
              "throttled": False, "stalled": False, "stopped_early": True}
    monkeypatch.setattr(followups, "run", lambda postman, **kw: dict(result))
    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-prod")
    assert handlers.followup.run({"time": "2026-12-01T08:00:00Z"}, None) == result
    [line] = emf_lines(capsys.readouterr().out)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "esim-tracker" and directive["Dimensions"] == [["Stage"]]
    named = {m["Name"] for m in directive["Metrics"]}
    assert named == set(metrics.JOB_COUNTS.values()) | {metrics.RUN_COMPLETED}
    assert all(m["Unit"] == "Count" for m in directive["Metrics"])
    assert line["Stage"] == "prod"
    assert (line["JobSent"], line["JobFailed"], line["JobErrors"], line["JobQuarantined"],
            line["JobStoppedEarly"], line["JobPaused"], line["JobStalled"],
            line["JobRunCompleted"]) == (3, 1, 2, 1, 1, 1, 0, 1)
    assert isinstance(line["_aws"]["Timestamp"], int)


def test_every_job_metric_is_a_count_that_real_runs_produce(app, postman, ses_client, table):
    """A metric the job can never make non-zero (JobPaused once was) is a lie and a bill."""
    from datetime import timedelta

    from soak import faults
    from tests.jobs import NOW, address, seed_due
    from tracker import followups

    seen = set()

    def run(**kwargs) -> dict:
        with app.app_context():
            result = followups.run(postman, now=NOW, **kwargs)
        assert set(metrics.JOB_COUNTS) <= set(result)  # a missing key would read as 0
        seen.update(key for key in metrics.JOB_COUNTS if result[key])
        return result

    # sent, retry, failed, suppressed and quarantined, in one run.
    ids = seed_due(postman.store, 6)
    postman.store.suppress(postman.store.address_key(address(4)), reason="bounce", now=NOW,
                           until=NOW + timedelta(days=365))
    table.update_item(Key={"pk": f"REQ#{ids[5]}"}, UpdateExpression="REMOVE next_key")

    def one_of_each(request, **_):
        if faults.recipient(request) == address(1):
            return faults.ses_error(request, "InternalFailure", 500)
        if faults.recipient(request) == address(2):
            return faults.ses_error(request, "MessageRejected", 400, message="bad content")

    with faults.injected(ses_client, one_of_each, "before-send.sesv2.SendEmail"):
        run()
    # errors: DynamoDB failing on one item past botocore's attempts.
    seed_due(postman.store, 1, start=10)
    broken = lambda request, **_: (  # noqa: E731
        faults.dynamodb_error(request, "InternalServerError", 500)
        if b"REQ#seed00010" in (request.body or b"") else None)
    with faults.fast_backoff(), faults.injected(table.meta.client, broken,
                                                "before-send.dynamodb.UpdateItem"):
        run()
    # paused and stalled: the account's sending is paused.
    seed_due(postman.store, 2, start=20)
    with faults.injected(ses_client, lambda request, **_: faults.ses_error(
            request, "SendingPausedException", 400), "before-send.sesv2.SendEmail"):
        run()
    # throttled, after one was sent (so not stalled).
    sends = []

    def throttle_the_second(request, **_):
        sends.append(1)
        if len(sends) > 1:
            return faults.ses_error(request, "TooManyRequestsException", 429)

    with faults.injected(ses_client, throttle_the_second, "before-send.sesv2.SendEmail"):
        assert not run()["stalled"]
    # stopped_early: no time left.
    run(time_left_millis=lambda: 0)

    assert seen == set(metrics.JOB_COUNTS)


def test_every_alarm_on_our_namespace_watches_a_metric_the_code_emits(template):
    ours = [p for p in alarms(template).values() if p.get("Namespace") == metrics.NAMESPACE]
    assert ours
    for props in ours:
        assert props["MetricName"] in metrics.EMITTED, props["MetricName"]
        assert props["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}]


def test_a_job_run_that_raises_emits_no_completed_run(monkeypatch, capsys):
    import app  # noqa: F401 - built before the test pretends to be on Lambda
    import handlers.followup
    from tracker import followups

    def broken(postman, **kw):
        raise RuntimeError("DynamoDB is down")

    monkeypatch.setattr(followups, "run", broken)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-prod")
    with pytest.raises(RuntimeError):
        handlers.followup.run({}, None)
    assert emf_lines(capsys.readouterr().out) == []


def test_each_form_post_counts_as_accepted_or_rejected(client, capsys, monkeypatch):
    client.post("/", data={"email": "not-an-address"})
    assert emf_lines(capsys.readouterr().out) == []  # off Lambda nobody reads them
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")
    client.post("/", data={"email": "not-an-address"})
    [rejected] = emf_lines(capsys.readouterr().out)
    assert (rejected["FormAccepted"], rejected["FormRejected"]) == (0, 1)
    client.get("/")
    assert emf_lines(capsys.readouterr().out) == []


# --- The operations template ----------------------------------------------------------

@pytest.fixture(scope="module")
def template() -> dict:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems
    return decoded


def test_operations_template_passes_cfn_lint():
    from cfnlint.api import lint_file

    assert [str(match) for match in lint_file(TEMPLATE)] == []


def alarms(template) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in template["Resources"].items()
            if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_alarm_the_runbook_names_is_defined_and_notifies_the_alarm_topic(template):
    found = {(p["Namespace"], p["MetricName"]) for p in alarms(template).values()}
    assert found == {
        ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("esim-tracker", metrics.RUN_COMPLETED), ("esim-tracker", "JobFailed"),
        ("esim-tracker", "JobErrors"), ("esim-tracker", "JobStoppedEarly"),
        ("esim-tracker", "JobStalled"), ("esim-tracker", "JobRetried"),
        ("esim-tracker", metrics.WEB_MAIL_PAUSED), ("esim-tracker", metrics.WEB_MAIL_FAILED),
        ("esim-tracker", metrics.FEEDBACK_DROPPED),
        ("AWS/SES", "Reputation.BounceRate"), ("AWS/SES", "Reputation.ComplaintRate"),
        ("AWS/ApiGateway", "5XXError")}
    for props in alarms(template).values():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        if props["Namespace"] == "esim-tracker":  # what tracker/metrics.py writes
            assert props["MetricName"] in metrics.EMITTED
            assert props["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}]


# CloudWatch's alarm evaluation, as documented: periods aligned on the clock, the last
# EvaluationPeriods of them, in ALARM when DatapointsToAlarm of them breach; the period's
# statistic compared with the threshold by the alarm's operator; a period without data
# breaching or not as TreatMissingData says. CloudWatch's own lag (a few minutes) comes
# on top. Every field that decides firing is read, so an alarm that would fire the wrong
# way on CloudWatch fails here too.
STATISTICS = {"Sum": sum, "Maximum": max, "Minimum": min, "SampleCount": len,
              "Average": lambda values: sum(values) / len(values)}
COMPARISONS = {"GreaterThanOrEqualToThreshold": operator.ge,
               "GreaterThanThreshold": operator.gt,
               "LessThanThreshold": operator.lt,
               "LessThanOrEqualToThreshold": operator.le}
MISSING_BREACHES = {"breaching": True, "notBreaching": False}


def alarm_fires_at(props, events: list[tuple[float, float]], *, until: float) -> float | None:
    """The first minute (from 0) at which the alarm is in ALARM, given (minute, value)
    data points; None if it never is before ``until``."""
    period = props["Period"] / 60
    count, needed = props["EvaluationPeriods"], props.get("DatapointsToAlarm",
                                                          props["EvaluationPeriods"])
    statistic = STATISTICS[props["Statistic"]]
    compare = COMPARISONS[props["ComparisonOperator"]]
    # "missing" (the default) and "ignore" keep the state as it was: not simulated here.
    missing_breaches = MISSING_BREACHES[props["TreatMissingData"]]
    minute = 0.0
    while minute <= until:
        last = int(minute // period)  # the period that ends at or before now
        breaching = 0
        for index in range(last - count, last):
            values = [v for t, v in events if index * period <= t < (index + 1) * period]
            breaching += (compare(statistic(values), props["Threshold"]) if values
                          else missing_breaches)
        if breaching >= needed:
            return minute
        minute += 1
    return None


def alarm_on(template, metric: str) -> list[dict]:
    return [p for p in alarms(template).values() if p["MetricName"] == metric]


def runs(every: float, start: float, until: float, value: float = 1.0):
    t, points = start, []
    while t <= until:
        points.append((t, value))
        t += every
    return points


@pytest.mark.parametrize("metric, points", [
    # SES refuses the sender or account, denies access, throttles: each run sends none.
    ("JobStalled", runs(15, 7, 120)),
    # Ten emails failing at every try, backing off 15, 30, 60 minutes.
    ("JobRetried", [(7, 10), (22, 10), (52, 10), (112, 10)]),
    ("WebMailPaused", [(3, 1)]),
    ("WebMailFailed", [(3, 1)]),
    ("FeedbackDropped", [(3, 1)]),
    ("5XXError", runs(10, 3, 120)),  # a trickle: one 500 every 10 minutes
], ids=["stalled", "retries", "web-paused", "web-failed", "feedback-dropped", "5xx-trickle"])
def test_every_way_of_sending_nothing_alarms_within_an_hour(template, metric, points):
    fired = [alarm_fires_at(p, points, until=120) for p in alarm_on(template, metric)]
    assert any(at is not None and at <= 60 for at in fired), fired


@pytest.mark.parametrize("metric, points", [
    ("JobStalled", [(7, 1)]),  # one run throttled, the next one sends
    ("JobRetried", [(7, 1), (22, 1), (52, 1), (112, 1)]),  # one email backing off
    ("5XXError", runs(60, 3, 180)),  # one stray 500 an hour
])
def test_a_passing_blip_does_not_page(template, metric, points):
    assert all(alarm_fires_at(p, points, until=180) is None for p in alarm_on(template, metric))


def test_dropped_sns_records_reach_an_alarm(template):
    """handlers/entry.py raises on an SNS record it cannot route: Lambda counts an error
    at once, and after its two retries the record waits in the dead-letter queue."""
    [errors] = alarm_on(template, "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName",
                                     "Value": {"Fn::Sub": "esim-tracker-${Stage}"}}]
    assert alarm_fires_at(errors, [(3, 1)], until=60) is not None
    [letters] = alarm_on(template, "ApproximateNumberOfMessagesVisible")
    assert letters["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert alarm_fires_at(letters, [(3, 1)], until=60) is not None


def condition_holds(template, name: str, parameters: dict) -> bool:
    """Evaluate one of the template's Conditions for the given parameter values."""
    def value(node):
        if isinstance(node, dict) and "Ref" in node:
            return parameters[node["Ref"]]
        if isinstance(node, dict) and "Condition" in node:
            return condition_holds(template, node["Condition"], parameters)
        if isinstance(node, dict):
            [(function, args)] = node.items()
            if function == "Fn::Equals":
                return value(args[0]) == value(args[1])
            if function == "Fn::And":
                return all(value(a) for a in args)
            if function == "Fn::Or":
                return any(value(a) for a in args)
            if function == "Fn::Not":
                return not value(args[0])
            raise AssertionError(function)
        return node

    return value(template["Conditions"][name])


@pytest.mark.parametrize("choice", ["auto", "yes"])
def test_account_level_alarms_and_budget_exist_once_per_account(template, choice):
    resources = template["Resources"]
    account_level = [name for name, r in resources.items()
                     if r["Type"] == "AWS::Budgets::Budget"
                     or r.get("Properties", {}).get("Namespace") == "AWS/SES"]
    assert sorted(account_level) == ["BounceRate", "ComplaintRate", "MonthlyBudgetAlert"]
    for name in account_level:
        props = resources[name]["Properties"]
        if "AlarmName" in props:
            assert isinstance(props["AlarmName"], str)  # one name, not one per stage
    stacks = []
    for stage in STAGES:
        # With auto, prod's stack holds them; "yes" is for an account with one stage.
        chosen = choice if stage == "prod" or choice == "auto" else "no"
        parameters = {"Stage": stage, "AccountAlarms": chosen, "AlarmEmail": "ops@example.org"}
        created = {name for name in account_level
                   if condition_holds(template, resources[name]["Condition"], parameters)}
        assert created in (set(), set(account_level))
        stacks.append(bool(created))
    assert stacks == [False, True]


def test_the_budget_mails_before_the_month_runs_over(template):
    budget = template["Resources"]["MonthlyBudgetAlert"]["Properties"]
    assert budget["Budget"]["BudgetLimit"] == {"Amount": {"Ref": "MonthlyBudget"},
                                               "Unit": "USD"}
    kinds = {(n["Notification"]["NotificationType"], n["Notification"]["Threshold"])
             for n in budget["NotificationsWithSubscribers"]}
    assert kinds == {("ACTUAL", 80), ("FORECASTED", 100)}
    assert all(n["Subscribers"] == [{"SubscriptionType": "EMAIL",
                                     "Address": {"Ref": "AlarmEmail"}}]
               for n in budget["NotificationsWithSubscribers"])


def test_the_dead_letter_queue_outlives_the_stack_and_takes_records_only_from_the_function(
        template):
    resources = template["Resources"]
    queue = resources["DeadLetterQueue"]
    assert queue["DeletionPolicy"] == "Retain" and queue["UpdateReplacePolicy"] == "Retain"
    policy = resources["DeadLetterQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "DeadLetterQueue"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Action"] == "sqs:SendMessage"  # receive and delete stay open
    assert statement["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Fn::Sub": (
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
        "esim-tracker-${Stage}-ZappaLambdaExecutionRole")}}}


@pytest.mark.parametrize("stage", STAGES)
def test_the_queue_policy_names_the_role_zappa_gives_the_function(stage):
    settings = lambda_runner.stage_settings(stage)
    assert settings["manage_roles"] is True
    # Zappa names its role <project>-<stage>-ZappaLambdaExecutionRole (cli.py role_name).
    from zappa.cli import ZappaCLI

    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_settings(str(ROOT / "zappa_settings.json"))
    assert cli.zappa.role_name == f"esim-tracker-{stage}-ZappaLambdaExecutionRole"


def test_a_job_that_has_not_completed_a_run_in_30_minutes_alarms(template):
    [props] = [p for p in alarms(template).values() if p["MetricName"] == metrics.RUN_COMPLETED]
    assert props["Period"] * props["EvaluationPeriods"] == 1800
    assert props["ComparisonOperator"] == "LessThanThreshold" and props["Threshold"] == 1
    assert props["TreatMissingData"] == "breaching"  # no run at all is the failure


def test_table_keeps_backups_refuses_deletion_and_matches_bootstrap(template):
    from tracker import store

    class Recorder:
        def create_table(self, **request):
            self.request = request

        def get_waiter(self, name):
            return type("Waiter", (), {"wait": lambda self, **kw: None})()

        def update_time_to_live(self, **request):
            self.ttl = request["TimeToLiveSpecification"]

    bootstrap = Recorder()
    store.create_table(bootstrap, "t")
    table = template["Resources"]["Table"]
    props = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert props["DeletionProtectionEnabled"] is True
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for key in ("BillingMode", "KeySchema", "GlobalSecondaryIndexes"):
        assert props[key] == bootstrap.request[key], key
    assert sorted(props["AttributeDefinitions"], key=str) == \
        sorted(bootstrap.request["AttributeDefinitions"], key=str)
    assert props["TimeToLiveSpecification"] == bootstrap.ttl


def test_logs_expire_after_30_days_and_failed_events_reach_the_queue(template):
    resources = template["Resources"]
    assert resources["FunctionLogs"]["Properties"] == {
        "LogGroupName": {"Fn::Sub": "/aws/lambda/esim-tracker-${Stage}"}, "RetentionInDays": 30}
    attached = resources["FailedInvocations"]
    assert attached["Condition"] == "Attach"
    assert attached["Properties"]["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}}


def test_feedback_topic_takes_messages_only_from_ses_of_this_account_and_stage(template):
    resources = template["Resources"]
    [statement] = resources["FeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"]["StringEquals"] == {
        "AWS:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"]["Fn::Sub"].endswith(
        ":configuration-set/esim-tracker-${Stage}")
    destination = resources["FeedbackDestination"]["Properties"]["EventDestination"]
    assert destination["SnsDestination"] == {"TopicARN": {"Ref": "FeedbackTopic"}}
    assert sorted(destination["MatchingEventTypes"]) == ["bounce", "complaint"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_sends_through_its_own_configuration_set_to_its_own_topic(stage, template):
    settings = lambda_runner.stage_settings(stage)
    env = settings["environment_variables"]
    assert env["SES_CONFIGURATION_SET"] == f"esim-tracker-{stage}"
    assert env["SECRETS_PATH"] == f"/esim-tracker/{stage}/"
    assert env["FEEDBACK_TOPIC_ARN"].endswith(f":esim-tracker-{stage}-ses-feedback")
    names = template["Resources"]
    assert names["FeedbackTopic"]["Properties"]["TopicName"] == {
        "Fn::Sub": "esim-tracker-${Stage}-ses-feedback"}
    assert names["ConfigurationSet"]["Properties"]["Name"] == {"Fn::Sub": "esim-tracker-${Stage}"}


def test_stack_subscribes_the_function_to_its_feedback_topic_once_it_exists(template):
    """The FunctionDeployed=yes pass, not Zappa, owns the subscription and the permission
    SNS invokes with: no `zappa update` removes, repeats or re-creates them."""
    resources = template["Resources"]
    permission, subscription = (resources["FeedbackInvokesFunction"],
                                resources["FeedbackSubscription"])
    assert permission["Condition"] == subscription["Condition"] == "Attach"
    assert permission["Type"] == "AWS::Lambda::Permission"
    assert permission["Properties"] == {
        "FunctionName": {"Fn::Sub": "esim-tracker-${Stage}"}, "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com", "SourceArn": {"Ref": "FeedbackTopic"}}
    assert subscription["Type"] == "AWS::SNS::Subscription"
    assert subscription["DependsOn"] == "FeedbackInvokesFunction"  # never a refused delivery
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "FeedbackTopic"}, "Protocol": "lambda",
        "Endpoint": {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:"
                                "${AWS::AccountId}:function:esim-tracker-${Stage}"}}
    # The function Zappa deploys for the stage is the one the stack subscribes.
    for stage in STAGES:
        assert lambda_runner.function_name(stage) == f"esim-tracker-{stage}"


def test_mailer_sends_through_the_configuration_set_it_is_given():
    from tracker.mail import Message, SesMailer

    sent = []

    class Client:
        def send_email(self, **request):
            sent.append(request)
            return {"MessageId": "m-1"}

    message = Message(subject="s", text="t", html="<p>h</p>")
    SesMailer(Client, configuration_set="esim-tracker-prod").send_email(
        from_address="a@example.org", to_address="b@example.org", message=message)
    SesMailer(Client).send_email(
        from_address="a@example.org", to_address="b@example.org", message=message)
    assert sent[0]["ConfigurationSetName"] == "esim-tracker-prod"
    assert "ConfigurationSetName" not in sent[1]


FUNCTION = f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:esim-tracker-prod"
RULE = f"arn:aws:events:eu-central-1:{ACCOUNT}:rule/esim-tracker-prod-handlers.followup.run"
TOPIC = f"arn:aws:sns:eu-central-1:{ACCOUNT}:esim-tracker-prod-ses-feedback"


def on_failure(event, function=FUNCTION + ":$LATEST") -> dict:
    """Lambda's on-failure destination record for ``event``."""
    return {"version": "1.0", "requestContext": {
        "functionArn": function, "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event, "responsePayload": {"errorType": "StoreError"}}


def scheduled(**changes) -> dict:
    event = {"version": "0", "id": "x", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": ACCOUNT,
             "time": "2026-12-01T08:00:00Z", "region": "eu-central-1",
             "resources": [RULE], "detail": {}}
    return {**event, **changes}


def feedback(topic=TOPIC, message="{}") -> dict:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "TopicArn": topic, "Message": message}}]}


class Lambda:
    def __init__(self):
        self.invoked = []

    def invoke(self, **request):
        self.invoked.append(request)


def test_redrive_sends_again_only_this_stages_schedule_and_feedback_and_leaves_the_rest(ssm):
    from deploy import redrive
    from tracker import aws

    assert redrive.schedule_rule_names("prod") == [RULE.rsplit("/", 1)[1]]
    sqs = aws.client("sqs")
    wanted = [scheduled(), feedback()]
    others = {
        "another rule": scheduled(resources=[RULE.replace("prod", "dev")]),
        "a command beside the schedule": scheduled(command="tracker.cli.bootstrap"),
        "raw python": {"raw_command": "import os; os.system('id')"},
        "another topic": feedback(topic=TOPIC.replace("prod", "dev")),
        "an SNS message naming a function": feedback(message='{"command": "app.x"}'),
        "another function": "another-function",
    }

    def queue(name: str) -> str:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        for event in wanted + [e for k, e in others.items() if k != "another function"]:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(on_failure(event)))
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(on_failure(
            scheduled(), function=FUNCTION.replace("prod", "dev"))))
        sqs.send_message(QueueUrl=url, MessageBody="not json")
        return url

    stage = {"function": "esim-tracker-prod", "function_arn": FUNCTION, "rule_arns": [RULE],
             "topic_arn": TOPIC}
    functions = Lambda()
    listed = redrive.redrive(sqs, functions, queue_url=queue("listed"), send=False, **stage)
    assert sorted(line for line in listed if not line.startswith("LEFT")) == [
        "schedule event, failed with StoreError", "sns event, failed with StoreError"]
    assert sum(line.startswith("LEFT") for line in listed) == len(others) + 1
    assert functions.invoked == []

    url = queue("esim-tracker-prod-dlq")
    sent = redrive.redrive(sqs, functions, queue_url=url, send=True, **stage)
    assert sum(not line.startswith("LEFT") for line in sent) == 2
    assert {r["FunctionName"] for r in functions.invoked} == {"esim-tracker-prod"}
    assert {r["InvocationType"] for r in functions.invoked} == {"Event"}
    payloads = sorted((json.loads(r["Payload"]) for r in functions.invoked), key=str)
    assert payloads == sorted(wanted, key=str)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # Every other record is still there, visible again for a person.
    assert attributes["ApproximateNumberOfMessages"] == str(len(others) + 1)
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_each_catalog_is_read_once_per_process_not_once_per_request(app, monkeypatch):
    """The tracker's catalogs; Flask-WTF reads WTForms' own small one per request."""
    from babel import support

    reads = []
    original = support.Translations.load.__func__

    def counting(cls, dirname=None, locales=None, domain=None):
        if domain in (None, "messages"):
            reads.append(str(locales[0]) if locales else None)
        return original(cls, dirname, locales, domain)

    monkeypatch.setattr(support.Translations, "load", classmethod(counting))
    client = app.test_client()
    for _ in range(3):
        for lang in ("ru", "zh"):
            assert client.get(f"/?lang={lang}").status_code == 200
    assert sorted(set(reads)) == ["ru", "zh"]
    assert len(reads) == len(set(reads)) * len(app.extensions["babel"].translation_directories)


# --- A run never outlives its reserve -------------------------------------------------

def bounds_of(client):
    """The bounds a live botocore client really runs with."""
    from tracker import aws

    cfg = client.meta.config
    return aws.Bounds(connect=cfg.connect_timeout, read=cfg.read_timeout,
                      attempts=cfg.retries["total_max_attempts"])


@pytest.mark.parametrize("stage", STAGES)
def test_the_reserve_covers_one_email_at_its_worst_and_fits_the_functions_timeout(
        stage, app, postman):
    from datetime import timedelta

    from tracker import aws

    # The very clients the app's store and mailer call.
    call, send = bounds_of(postman.store.table.meta.client), bounds_of(postman.mailer.client())
    assert (call, send) == (aws.DYNAMODB, aws.SEND)  # the clients run with these
    assert send.attempts == 1  # a retried send can be a second email
    # Query, claim, re-read, send, record: each at its worst (timeouts, attempts, waits).
    worst = 4 * call.worst_seconds() + send.worst_seconds()
    reserve = app.config["RESERVE_MILLIS"] / 1000
    timeout = lambda_runner.stage_settings(stage)["timeout_seconds"]
    assert worst <= reserve
    assert reserve + 60 <= timeout  # a minute of work per run at the least
    assert timedelta(seconds=app.config["LEASE_SECONDS"]) > timedelta(seconds=timeout)
    # Sending starts only while the lease outlives the re-read, the send and the record.
    assert postman.lease_margin >= timedelta(seconds=2 * call.worst_seconds()
                                             + send.worst_seconds())
    assert postman.time_to_send() >= timedelta(seconds=2 * call.worst_seconds()
                                               + send.worst_seconds())


def test_worst_case_of_one_call_counts_every_attempt_and_every_wait():
    from tracker import aws

    # 4 attempts of 1 s + 2 s, three waits of at most 1, 2 and 4 s, each + 5 s of hint.
    assert aws.Bounds(connect=1, read=2, attempts=4).worst_seconds() == 12 + 7 + 15
    assert aws.Bounds(connect=2, read=8, attempts=1).worst_seconds() == 10
    # The backoff is capped at 20 s a wait.
    assert aws.Bounds(connect=0, read=0, attempts=8).worst_seconds() == \
        1 + 2 + 4 + 8 + 16 + 20 + 20 + 7 * 5
