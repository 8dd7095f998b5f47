"""Operations: secrets from SSM, the metrics lines, the operations template, the settings.

Against the session's moto server (SSM, Lambda) and offline (cfn-lint, Zappa's own
settings loader); nothing here reaches AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime

import pytest
from cfnlint.decode import decode

from deploy import lambda_runner, secret
from tests.conftest import ROOT
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

def emf_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()
            if line.startswith("{") and '"_aws"' in line]


def test_job_run_emits_its_counts_as_one_emf_line(monkeypatch, capsys):
    import app  # noqa: F401 - built before the test pretends to be on Lambda
    import handlers.followup
    from tracker import followups

    result = {"sent": 3, "failed": 1, "deferred": 2, "retry": 0, "skipped": 0,
              "suppressed": 0, "errors": 2, "quarantined": 1, "paused": False,
              "throttled": False, "stopped_early": True}
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
            line["JobStoppedEarly"], line["JobPaused"], line["JobRunCompleted"]) == \
        (3, 1, 2, 1, 1, 0, 1)
    assert isinstance(line["_aws"]["Timestamp"], int)


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
        ("AWS/SES", "Reputation.BounceRate"), ("AWS/SES", "Reputation.ComplaintRate"),
        ("AWS/ApiGateway", "5XXError")}
    for props in alarms(template).values():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        if props["Namespace"] == "esim-tracker":  # what tracker/metrics.py writes
            assert props["MetricName"] in {*metrics.JOB_COUNTS.values(), metrics.RUN_COMPLETED}
            assert props["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}]


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
    [source] = [e["event_source"]["arn"] for e in settings["events"] if "event_source" in e]
    assert source.endswith(f":esim-tracker-{stage}-ses-feedback")
    names = template["Resources"]
    assert names["FeedbackTopic"]["Properties"]["TopicName"] == {
        "Fn::Sub": "esim-tracker-${Stage}-ses-feedback"}
    assert names["ConfigurationSet"]["Properties"]["Name"] == {"Fn::Sub": "esim-tracker-${Stage}"}


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


def test_redrive_invokes_the_function_with_each_failed_event_then_deletes_it(ssm):
    from deploy import redrive
    from tracker import aws

    sqs = aws.client("sqs")
    schedule = {"detail-type": "Scheduled Event", "time": "2026-12-01T08:00:00Z"}
    sns = {"Records": [{"Sns": {"Message": "{}"}}]}

    def queue(name: str) -> str:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        for event in (schedule, sns):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
                "requestPayload": event, "responsePayload": {"errorType": "StoreError"}}))
        return url

    class Lambda:
        def __init__(self):
            self.invoked = []

        def invoke(self, **request):
            self.invoked.append(request)

    functions = Lambda()
    listed = redrive.redrive(sqs, functions, queue_url=queue("listed"),
                             function="esim-tracker-prod", send=False)
    assert sorted(listed) == ["schedule event, failed with StoreError",
                              "sns event, failed with StoreError"]
    assert functions.invoked == []

    url = queue("esim-tracker-prod-dlq")
    sent = redrive.redrive(sqs, functions, queue_url=url, function="esim-tracker-prod",
                           send=True)
    assert len(sent) == 2
    assert {r["FunctionName"] for r in functions.invoked} == {"esim-tracker-prod"}
    assert {r["InvocationType"] for r in functions.invoked} == {"Event"}
    payloads = sorted((json.loads(r["Payload"]) for r in functions.invoked), key=str)
    assert payloads == sorted([schedule, sns], key=str)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # deleted, not hidden


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
