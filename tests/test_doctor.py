"""The doctor (python -m deploy.doctor) against a stage deployed on moto's server.

Each test breaks one thing of a healthy prod stage (tests/stagekit.py) the way it breaks
on AWS, and holds that the doctor names it, says what to run, and exits non-zero; the
healthy stage passes every check. The pages are fetched over HTTP from a local server
running the app on the stage's table.
"""

from __future__ import annotations

import contextlib
import io
import json
import urllib.request

import boto3
import pytest

from deploy import doctor
from deploy.doctor import permissions, table
from deploy.doctor.stage import load
from tests import stagekit
from tests.conftest import ACCOUNT, free_port
from tests.stagekit import serve

STAGE = "prod"


def tracker_app(table_name: str):
    from app import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "doctor-test", "TABLE_NAME": table_name,
                       "MAIL_FROM": "tracker@example.org", "BASE_URL": "http://127.0.0.1"})


@pytest.fixture(scope="module")
def site():
    """The app on prod's table, as API Gateway would serve it."""
    settings = json.loads((stagekit.ROOT / "zappa_settings.json").read_text())
    url, stop = serve(tracker_app(settings[STAGE]["environment_variables"]["TABLE_NAME"]))
    yield url
    stop()


@pytest.fixture
def account():
    """What SESv2 GetAccount answers (moto has no such route)."""
    return dict(stagekit.HEALTHY_ACCOUNT)


@pytest.fixture
def session(account):
    session = boto3.Session(region_name="eu-central-1")
    stagekit.answer_ses_account(session, account)
    return session


class Deployed:
    """A healthy stage on moto, and the doctor's verdict on it."""

    def __init__(self, stage, session, function_arn):
        self.stage, self.session, self.function_arn = stage, session, function_arn

    def client(self, service):
        return self.session.client(service, region_name=self.stage.region)

    def output(self, key):
        stack = self.client("cloudformation").describe_stacks(StackName=self.stage.stack)
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0]["Outputs"]}[key]

    def doctor(self):
        """Run ``python -m deploy.doctor prod -s …``: exit status, lines by subject."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = doctor.main([self.stage.name, "-s", str(self.stage.settings_file)],
                                 session=self.session)
        lines = out.getvalue().splitlines()
        by_subject = {}
        for line in lines[:-1]:
            verdict, rest = line.split(maxsplit=1)
            subject, _, detail = rest.partition(": ")
            by_subject[subject] = (verdict, detail)
        return status, by_subject, out.getvalue()

    def failed(self):
        """The exit status and the subjects that failed."""
        status, lines, _ = self.doctor()
        return status, {s for s, (verdict, _) in lines.items() if verdict == "FAIL"}

    def detail(self, subject):
        return self.doctor()[1][subject]


@pytest.fixture
def deployed(moto_endpoint, session, site, tmp_path):
    """A fresh emulated account holding a healthy prod stage."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    stage = load(STAGE, stagekit.settings_file(tmp_path, STAGE, base_url=site))
    return Deployed(stage, session, stagekit.healthy_stage(session, stage))


# --- A healthy stage ----------------------------------------------------------------

def test_a_healthy_stage_passes_every_check_with_one_line_each(deployed):
    status, lines, out = deployed.doctor()
    assert status == 0, out
    assert list(lines) == [subject for subject, _ in doctor.CHECKS]
    assert {verdict for verdict, _ in lines.values()} == {"ok"}, out
    assert lines["schedule rule"][1] == (
        "esim-tracker-prod-handlers.followup.run ENABLED, rate(15 minutes)")


def test_the_rule_is_looked_for_under_the_name_zappa_gives_it(deployed):
    assert deployed.stage.rule == "esim-tracker-prod-handlers.followup.run"
    rules = deployed.client("events").list_rule_names_by_target(
        TargetArn=deployed.function_arn)["RuleNames"]
    assert rules == [deployed.stage.rule]


def test_output_names_no_alarm_subscriber_and_no_secret_value(deployed):
    ssm = deployed.client("ssm")
    values = [ssm.get_parameter(Name=f"/esim-tracker/prod/{name}", WithDecryption=True)
              ["Parameter"]["Value"] for name in ("SECRET_KEY", "ADDRESS_PEPPER")]
    _, _, out = deployed.doctor()
    assert stagekit.ALARM_EMAIL not in out
    assert "SECRET_KEY" in out and not any(value in out for value in values)


def test_an_unknown_stage_is_a_usage_error(deployed, capsys):
    assert doctor.main(["nosuchstage", "-s", str(deployed.stage.settings_file)]) == 2
    assert "nosuchstage" in capsys.readouterr().err


# --- The follow-up job's rule -------------------------------------------------------

def test_a_deleted_rule_fails_and_says_zappa_schedule(deployed):
    events = deployed.client("events")
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=deployed.stage.rule)["Targets"]]
    events.remove_targets(Rule=deployed.stage.rule, Ids=ids)
    events.delete_rule(Name=deployed.stage.rule)
    status, failed = deployed.failed()
    assert status == 1
    assert failed == {"schedule rule", "schedule target", "schedule permission"}
    assert "missing" in deployed.detail("schedule rule")[1]
    assert deployed.detail("schedule rule")[1].endswith(
        f"zappa schedule prod -s {deployed.stage.settings_file}")


def test_a_disabled_rule_fails_and_says_how_to_enable_it(deployed):
    deployed.client("events").disable_rule(Name=deployed.stage.rule)
    assert deployed.failed() == (1, {"schedule rule"})
    assert deployed.detail("schedule rule")[1].endswith(
        "aws events enable-rule --name esim-tracker-prod-handlers.followup.run")


def test_a_rule_at_another_rate_fails(deployed):
    deployed.client("events").put_rule(Name=deployed.stage.rule,
                                       ScheduleExpression="rate(1 day)", State="ENABLED")
    assert deployed.failed() == (1, {"schedule rule"})
    assert "rate(1 day)" in deployed.detail("schedule rule")[1]


def test_a_rule_that_invokes_another_function_fails(deployed):
    events = deployed.client("events")
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=deployed.stage.rule)["Targets"]]
    events.remove_targets(Rule=deployed.stage.rule, Ids=ids)
    events.put_targets(Rule=deployed.stage.rule, Targets=[{
        "Id": "other", "Arn": deployed.function_arn.replace("-prod", "-dev")}])
    assert deployed.failed() == (1, {"schedule target"})


def test_eventbridge_without_permission_to_invoke_fails(deployed):
    rule_arn = deployed.client("events").describe_rule(Name=deployed.stage.rule)["Arn"]
    functions = deployed.client("lambda")
    for statement in json.loads(functions.get_policy(FunctionName="esim-tracker-prod")["Policy"])[
            "Statement"]:
        if permissions.grants(statement, "events.amazonaws.com", rule_arn):
            functions.remove_permission(FunctionName="esim-tracker-prod",
                                        StatementId=statement["Sid"])
    assert deployed.failed() == (1, {"schedule permission"})


# --- SES feedback -------------------------------------------------------------------

def test_a_missing_feedback_subscription_fails(deployed):
    sns = deployed.client("sns")
    for subscription in sns.list_subscriptions_by_topic(
            TopicArn=deployed.output("FeedbackTopicArn"))["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    assert deployed.failed() == (1, {"feedback subscription"})
    repair = deployed.detail("feedback subscription")[1]
    assert repair.index("FunctionDeployed=no") < repair.index("FunctionDeployed=yes")


def test_a_missing_sns_permission_fails(deployed):
    topic = deployed.output("FeedbackTopicArn")
    functions = deployed.client("lambda")
    for statement in json.loads(functions.get_policy(FunctionName="esim-tracker-prod")["Policy"])[
            "Statement"]:
        if permissions.grants(statement, "sns.amazonaws.com", topic):
            functions.remove_permission(FunctionName="esim-tracker-prod",
                                        StatementId=statement["Sid"])
    assert deployed.failed() == (1, {"feedback permission"})


def test_a_configuration_set_that_publishes_no_feedback_fails(deployed):
    # (moto 5.2.5 answers 500 to DeleteConfigurationSetEventDestination: the settings
    # name a set that has none instead.)
    deployed.client("sesv2").create_configuration_set(ConfigurationSetName="bare")
    settings = json.loads(deployed.stage.settings_file.read_text())
    settings["prod"]["environment_variables"]["SES_CONFIGURATION_SET"] = "bare"
    deployed.stage.settings_file.write_text(json.dumps(settings))
    assert deployed.failed() == (1, {"feedback destination"})


def test_a_missing_configuration_set_fails(deployed):
    deployed.client("sesv2").delete_configuration_set(ConfigurationSetName="esim-tracker-prod")
    status, failed = deployed.failed()
    assert status == 1 and failed == {"configuration set", "feedback destination"}


# --- The resource policy ------------------------------------------------------------

def old_zappa_statements(deployed, count: int) -> None:
    """What each old ``zappa update`` left: an SNS statement with a random id."""
    topic = deployed.output("FeedbackTopicArn")
    for n in range(count):
        deployed.client("lambda").add_permission(
            FunctionName="esim-tracker-prod", StatementId=f"Q{n:07d}",
            Action="lambda:InvokeFunction", Principal="sns.amazonaws.com", SourceArn=topic,
            SourceAccount=ACCOUNT)


def test_statements_old_zappa_deploys_left_are_listed_with_the_command_to_remove_them(deployed):
    old_zappa_statements(deployed, 3)
    status, lines, out = deployed.doctor()
    assert status == 0, out  # harmless yet: a warning
    verdict, detail = lines["old Zappa statements"]
    assert verdict == "warn" and "3 SNS statement(s)" in detail
    assert "Q0000000 Q0000001 Q0000002" in detail and "remove-permission" in detail
    assert lines["resource policy size"][0] == "ok"


def test_a_policy_near_lambdas_20_kb_fails(deployed):
    size = len(deployed.client("lambda").get_policy(FunctionName="esim-tracker-prod")["Policy"])
    each = 380  # one such statement, as measured on moto
    old_zappa_statements(deployed, (permissions.FAIL_AT - size) // each + 2)
    assert deployed.failed() == (1, {"resource policy size"})


# --- Dead letters, the function ---------------------------------------------------

def test_a_missing_dead_letter_destination_fails(deployed):
    deployed.client("lambda").delete_function_event_invoke_config(
        FunctionName="esim-tracker-prod", Qualifier="$LATEST")
    assert deployed.failed() == (1, {"dead letters"})
    # CloudFormation does not make again what was deleted outside it, so while the stack
    # says yes a `yes` pass alone changes nothing: the repair passes no, then yes.
    repair = deployed.detail("dead letters")[1]
    assert repair.index("FunctionDeployed=no") < repair.index("FunctionDeployed=yes")


def test_dead_letters_sent_elsewhere_fail(deployed):
    functions = deployed.client("lambda")
    # moto keeps the first config and appends the next: delete, then put.
    functions.delete_function_event_invoke_config(FunctionName="esim-tracker-prod",
                                                  Qualifier="$LATEST")
    functions.put_function_event_invoke_config(
        FunctionName="esim-tracker-prod", Qualifier="$LATEST", DestinationConfig={
            "OnFailure": {"Destination": f"arn:aws:sqs:eu-central-1:{ACCOUNT}:other"}})
    assert deployed.failed() == (1, {"dead letters"})


def test_a_function_whose_real_environment_lacks_the_import_time_build_fails(deployed):
    deployed.client("lambda").update_function_configuration(
        FunctionName="esim-tracker-prod", Environment={"Variables": {}})
    assert deployed.failed() == (1, {"function environment"})
    assert "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT" in deployed.detail("function environment")[1]


def test_settings_that_keep_the_import_time_build_out_of_lambdas_environment_fail(
        deployed, tmp_path):
    settings = json.loads(deployed.stage.settings_file.read_text())
    settings["prod"]["aws_environment_variables"] = {}
    deployed.stage.settings_file.write_text(json.dumps(settings))
    assert deployed.failed() == (1, {"function environment"})
    assert "add \"INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT\": \"1\" there" in deployed.detail(
        "function environment")[1]


def test_a_key_left_in_the_functions_variables_fails_without_printing_it(deployed):
    deployed.client("lambda").update_function_configuration(
        FunctionName="esim-tracker-prod", Environment={"Variables": {
            "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT": "1", "SECRET_KEY": "an-old-key-1234"}})
    status, lines, out = deployed.doctor()
    assert status == 1 and lines["function environment"][0] == "FAIL"
    assert "SECRET_KEY" in lines["function environment"][1] and "an-old-key-1234" not in out


def test_a_function_on_another_runtime_fails(deployed):
    deployed.client("lambda").update_function_configuration(
        FunctionName="esim-tracker-prod", Runtime="python3.11", Timeout=3)
    assert deployed.failed() == (1, {"function settings"})
    assert "'python3.11'" in deployed.detail("function settings")[1]


def test_a_function_without_the_secrets_extensions_layer_fails(deployed):
    # Without it every cold start reads SSM through botocore (README, Benchmarks).
    deployed.client("lambda").update_function_configuration(
        FunctionName="esim-tracker-prod", Layers=[])
    assert deployed.failed() == (1, {"function settings"})
    assert "Parameters-and-Secrets" in deployed.detail("function settings")[1]


# --- Flood limits (README, Floods and cost) -----------------------------------------

def test_a_function_whose_reserved_concurrency_was_removed_fails(deployed):
    # By hand, or refused by an account whose concurrency quota is too low.
    deployed.client("lambda").delete_function_concurrency(FunctionName="esim-tracker-prod")
    assert deployed.failed() == (1, {"reserved concurrency"})
    detail = deployed.detail("reserved concurrency")[1]
    assert "none (settings: 25)" in detail and "zappa update prod" in detail


def test_a_reserved_concurrency_other_than_the_settings_fails(deployed):
    deployed.client("lambda").put_function_concurrency(
        FunctionName="esim-tracker-prod", ReservedConcurrentExecutions=3)
    assert deployed.failed() == (1, {"reserved concurrency"})
    assert "reserved concurrency 3 (settings: 25)" in deployed.detail("reserved concurrency")[1]


def api_id(deployed) -> str:
    from deploy import limits

    return limits.rest_api_id(deployed.client("apigateway"), "esim-tracker-prod")


def test_an_api_stage_whose_throttle_was_changed_fails_and_says_deploy_limits(deployed):
    from deploy import limits

    limits.apply(deployed.client("apigateway"), api_id(deployed), "prod",
                 limits.Throttle(rate=10_000, burst=5_000))
    assert deployed.failed() == (1, {"API throttle"})
    detail = deployed.detail("API throttle")[1]
    assert "10000 a second, bursts of 5000, not 5 a second with bursts of 10" in detail
    assert detail.endswith("python -m deploy.limits prod")


def test_a_new_api_without_a_throttle_of_its_own_fails(deployed):
    # `zappa undeploy` then `zappa deploy` makes a new API, whose stage has no throttle.
    deployed.client("apigateway").delete_rest_api(restApiId=api_id(deployed))
    stagekit.stand_in_api(deployed.session, deployed.stage)
    assert deployed.failed() == (1, {"API throttle"})
    assert "none of its own" in deployed.detail("API throttle")[1]


def test_a_stage_without_its_api_fails_and_says_zappa_deploy(deployed):
    deployed.client("apigateway").delete_rest_api(restApiId=api_id(deployed))
    assert deployed.failed() == (1, {"API throttle"})
    assert "no REST API named esim-tracker-prod" in deployed.detail("API throttle")[1]


def test_a_stage_never_deployed_names_the_missing_function_not_a_crash(deployed):
    deployed.client("lambda").delete_function(FunctionName="esim-tracker-prod")
    status, lines, _ = deployed.doctor()
    assert status == 1
    assert "no function esim-tracker-prod" in lines["function settings"][1]


# --- SES ----------------------------------------------------------------------------

def test_an_unverified_sender_fails(deployed):
    sender = deployed.stage.env["MAIL_FROM"]
    domain = sender.rpartition("@")[2]
    deployed.client("ses").delete_identity(Identity=domain)
    status, failed = deployed.failed()
    assert status == 1 and failed == {"sender identity"}
    assert f"create-email-identity --email-identity {domain}" in deployed.detail(
        "sender identity")[1]


def test_a_sender_verified_by_address_alone_passes_but_warns_of_no_dkim(deployed):
    sender = deployed.stage.env["MAIL_FROM"]
    ses = deployed.client("ses")
    ses.delete_identity(Identity=sender.rpartition("@")[2])
    ses.verify_email_identity(EmailAddress=sender)
    status, lines, _ = deployed.doctor()
    assert status == 0
    assert lines["sender identity"][0] == "ok" and lines["DKIM"][0] == "warn"


@pytest.mark.parametrize("status", ["Failed", "TemporaryFailure"])
def test_a_domain_whose_dkim_records_were_lost_fails(deployed, status):
    """SES stops signing when it no longer finds the CNAME records (moto always reports
    Success: its answer is changed on the way back)."""
    def lost(parsed, **_):
        for attributes in parsed.get("DkimAttributes", {}).values():
            attributes["DkimVerificationStatus"] = status

    deployed.session.events.register("after-call.ses.GetIdentityDkimAttributes", lost)
    assert deployed.failed() == (1, {"DKIM"})
    assert f"is {status}" in deployed.detail("DKIM")[1]


def test_an_account_in_the_ses_sandbox_fails(deployed, account):
    account["ProductionAccessEnabled"] = False
    assert deployed.failed() == (1, {"SES account"})
    assert "put-account-details --production-access-enabled" in deployed.detail(
        "SES account")[1]


def test_an_account_whose_sending_is_paused_fails(deployed, account):
    account["SendingEnabled"] = False
    assert deployed.failed() == (1, {"SES account"})


def test_a_send_rate_above_ses_maximum_fails(deployed, account):
    account["SendQuota"] = {**account["SendQuota"], "MaxSendRate": 0.5}
    assert deployed.failed() == (1, {"sending rate"})


# --- Alarms -------------------------------------------------------------------------

def test_an_unconfirmed_alarm_subscription_fails_without_naming_its_address(deployed):
    stagekit.pending_email_subscriptions(deployed.session)
    status, lines, out = deployed.doctor()
    assert status == 1 and lines["alarm subscription"][0] == "FAIL"
    assert "1 subscription(s)" in lines["alarm subscription"][1]
    assert stagekit.ALARM_EMAIL not in out


def test_an_alarm_topic_nobody_subscribes_to_warns(deployed):
    sns = deployed.client("sns")
    for subscription in sns.list_subscriptions_by_topic(
            TopicArn=deployed.output("AlarmTopicArn"))["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    status, lines, _ = deployed.doctor()
    assert status == 0 and lines["alarm subscription"][0] == "warn"


# --- Pages --------------------------------------------------------------------------

def test_a_stats_page_that_answers_5xx_fails(deployed, tmp_path):
    url, stop = serve(tracker_app("no-such-table"))  # DynamoDB refuses: the app says 503
    try:
        settings = json.loads(deployed.stage.settings_file.read_text())
        settings["prod"]["environment_variables"]["BASE_URL"] = url
        deployed.stage.settings_file.write_text(json.dumps(settings))
        status, lines, _ = deployed.doctor()
    finally:
        stop()
    assert status == 1
    assert {s for s, (verdict, _) in lines.items() if verdict == "FAIL"} == {"GET /stats"}
    assert "answered 503" in lines["GET /stats"][1]


def test_an_unreachable_base_url_fails_both_pages(deployed):
    settings = json.loads(deployed.stage.settings_file.read_text())
    settings["prod"]["environment_variables"]["BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    deployed.stage.settings_file.write_text(json.dumps(settings))
    assert deployed.failed() == (1, {"GET /", "GET /stats"})


# --- The table ----------------------------------------------------------------------

def test_ttl_off_fails(deployed):
    deployed.client("dynamodb").update_time_to_live(
        TableName="esim-cancellations",
        TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires"})
    assert deployed.failed() == (1, {"table TTL"})


def test_ttl_on_another_attribute_fails(deployed):
    ddb = deployed.client("dynamodb")
    ddb.update_time_to_live(TableName="esim-cancellations", TimeToLiveSpecification={
        "Enabled": False, "AttributeName": "expires"})
    ddb.update_time_to_live(TableName="esim-cancellations", TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "ttl"})
    assert deployed.failed() == (1, {"table TTL"})


def test_point_in_time_recovery_off_fails(deployed):
    deployed.client("dynamodb").update_continuous_backups(
        TableName="esim-cancellations",
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    assert deployed.failed() == (1, {"table recovery"})


def test_deletion_protection_off_fails(deployed):
    deployed.client("dynamodb").update_table(TableName="esim-cancellations",
                                             DeletionProtectionEnabled=False)
    assert deployed.failed() == (1, {"table protection"})


def test_the_ttl_attribute_is_the_one_the_stack_declares(deployed):
    from cfnlint.decode import decode

    template, _ = decode(str(stagekit.TEMPLATE))
    spec = template["Resources"]["Table"]["Properties"]["TimeToLiveSpecification"]
    assert spec["AttributeName"] == table.TTL_ATTRIBUTE


# --- Secrets ------------------------------------------------------------------------

def test_a_missing_secret_fails_and_names_the_command_that_creates_it(deployed):
    deployed.client("ssm").delete_parameter(Name="/esim-tracker/prod/ADDRESS_PEPPER")
    assert deployed.failed() == (1, {"secrets"})
    assert deployed.detail("secrets")[1].endswith("python -m deploy.secret prod")


# --- The stack ----------------------------------------------------------------------

def test_a_stack_never_attached_to_the_function_fails(deployed):
    stagekit.deploy_stack(deployed.session, deployed.stage, FunctionDeployed="no")
    status, failed = deployed.failed()
    assert status == 1 and "operations stack" in failed
    assert "FunctionDeployed=no" in deployed.detail("operations stack")[1]


def test_a_read_the_credentials_may_not_make_fails_that_line_only(deployed):
    from botocore.exceptions import ClientError

    def refuse(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message":
                                     "not authorized to DescribeContinuousBackups"}},
                          "DescribeContinuousBackups")

    deployed.session.events.register("before-call.dynamodb.DescribeContinuousBackups", refuse)
    assert deployed.failed() == (1, {"table recovery"})
    assert "AccessDeniedException" in deployed.detail("table recovery")[1]


def test_a_stage_without_its_operations_stack_says_how_to_deploy_it(deployed):
    deployed.client("cloudformation").delete_stack(StackName=deployed.stage.stack)
    status, lines, _ = deployed.doctor()
    assert status == 1
    verdict, detail = lines["operations stack"]
    assert verdict == "FAIL" and "aws cloudformation deploy --template-file" in detail
    assert "Stage=prod TableName=esim-cancellations" in detail
    assert lines["dead letters"] == (
        "FAIL", "not checked: no operations stack esim-tracker-prod-operations")


def test_a_stack_whose_creation_rolled_back_says_delete_it_not_deploy_it(deployed):
    """AWS refuses to update a stack in ROLLBACK_COMPLETE (moto never leaves one: its
    answer is changed on the way back)."""
    def rolled_back(parsed, **_):
        for stack in parsed.get("Stacks", []):
            stack["StackStatus"] = "ROLLBACK_COMPLETE"

    deployed.session.events.register("after-call.cloudformation.DescribeStacks", rolled_back)
    verdict, detail = deployed.detail("operations stack")
    assert verdict == "FAIL"
    assert "aws cloudformation delete-stack --stack-name esim-tracker-prod-operations" in detail
    assert "aws cloudformation deploy" not in detail

