"""A deployed stage on moto's server, as the README's first deploy leaves it on AWS.

The operations stack is the real template, deployed through moto's CloudFormation; the
function is created with what Zappa gives it; the follow-up job's rule is made by
Zappa's own ``schedule_events``. moto's CloudFormation reports CREATE_COMPLETE while
skipping some of the template (moto 5.2.5: TTL, point-in-time recovery, the SES
configuration set and its event destination, the EventInvokeConfig, the alarm
subscription); ``complete_on_moto`` does what AWS would have done for each, and only
when it is missing, so a template that grows keeps working here.

Two things moto cannot show at all go through botocore's own event hooks on the session
the doctor is given, the rest of each call staying real:
- SESv2 ``GetAccount`` (moto has no such route: 404): ``answer_ses_account``;
- an unconfirmed email subscription (moto confirms every one at once,
  moto/sns/models.py ``PendingConfirmation: False``): ``pending_email_subscriptions``
  lists them as SNS lists one nobody has confirmed.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from pathlib import Path

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from werkzeug.serving import make_server

from deploy.doctor import permissions
from deploy.doctor.function import INSTANTIATE
from deploy.doctor.stage import Stage
from tests.conftest import ROOT, free_port
from tests.zappa_moto import stand_in_layers

TEMPLATE = ROOT / "deploy" / "operations.yaml"
ALARM_EMAIL = "ops@example.org"


def serve(app) -> tuple[str, callable]:
    """A WSGI app over HTTP on a free port, in a thread: its URL, and how to stop it."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server.shutdown


def settings_file(folder: Path, stage: str, *, base_url: str, source: Path | None = None,
                  **variables: str) -> Path:
    """The repository's settings, with the stage's BASE_URL (a local server) and its
    ``aws_environment_variables`` holding INSTANTIATE_… (the brief's decision 4)."""
    settings = json.loads((source or ROOT / "zappa_settings.json").read_text())
    own = settings[stage]
    parent = settings.get(own.get("extends", ""), {})
    aws_env = dict(own.get("aws_environment_variables", parent.get("aws_environment_variables"))
                   or {})
    aws_env.setdefault(INSTANTIATE, "1")
    own["aws_environment_variables"] = aws_env
    env = dict(own.get("environment_variables", parent.get("environment_variables")))
    own["environment_variables"] = {**env, "BASE_URL": base_url, **variables}
    path = folder / "zappa_settings.json"
    path.write_text(json.dumps(settings, indent=2))
    return path


def deploy_stack(session: boto3.Session, stage: Stage, **parameters: str) -> None:
    """``aws cloudformation deploy`` of the operations template (create or update)."""
    cfn = session.client("cloudformation")
    values = {"Stage": stage.name, "TableName": stage.env["TABLE_NAME"],
              "AlarmEmail": ALARM_EMAIL, **parameters}
    arguments = dict(StackName=stage.stack, TemplateBody=TEMPLATE.read_text(),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                 for k, v in values.items()])
    try:
        cfn.describe_stacks(StackName=stage.stack)
    except ClientError:
        cfn.create_stack(**arguments)
    else:
        cfn.update_stack(**arguments)


def create_function(session: boto3.Session, stage: Stage) -> str:
    """The function as ``zappa deploy`` creates it (zappa/core.py create_lambda_function)."""
    settings = stage.settings
    role = session.client("iam").create_role(
        RoleName=f"{stage.function}-ZappaLambdaExecutionRole",
        AssumeRolePolicyDocument=(ROOT / settings["assume_policy"]).read_text())["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handlers/entry.py", "def lambda_handler(event, context):\n    pass\n")
    stand_in_layers(session.client("lambda"), settings.get("layers") or ())
    return session.client("lambda").create_function(
        FunctionName=stage.function, Runtime=settings["runtime"], Role=role,
        Handler=settings["lambda_handler"], Code={"ZipFile": code.getvalue()},
        Timeout=settings["timeout_seconds"], MemorySize=settings["memory_size"],
        Architectures=[settings["architecture"]], Publish=True,
        Environment={"Variables": settings.get("aws_environment_variables") or {}},
        Layers=list(settings.get("layers") or ()),
    )["FunctionArn"]


def flood_limits(session: boto3.Session, stage: Stage) -> None:
    """What Zappa's deploy reserves (``lambda_concurrency``) and what ``make deploy``'s
    ``python -m deploy.limits`` sets on the API Zappa made (a stand-in API here)."""
    from deploy import limits

    session.client("lambda").put_function_concurrency(
        FunctionName=stage.function,
        ReservedConcurrentExecutions=stage.settings["lambda_concurrency"])
    limits.apply(session.client("apigateway"), stand_in_api(session, stage), stage.name,
                 limits.for_stage(stage.name, stage.settings))


def stand_in_api(session: boto3.Session, stage: Stage) -> str:
    """A REST API named as Zappa names the stage's, deployed to the stage; its id."""
    apigateway = session.client("apigateway")
    api_id = apigateway.create_rest_api(name=stage.function)["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="ANY",
                          authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="ANY",
                               type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName=stage.name)
    return api_id


def schedule(session: boto3.Session, stage: Stage, function_arn: str) -> None:
    """``zappa schedule``: Zappa's own code makes the rule, its target and its permission.

    Only the follow-up job: the feedback subscription is the stack's (decision 2).
    """
    from zappa.core import Zappa

    zappa = Zappa(boto_session=session, aws_region=stage.region,
                  runtime=stage.settings["runtime"],
                  architecture=stage.settings["architecture"])
    zappa.credentials_arn = session.client("lambda").get_function_configuration(
        FunctionName=stage.function)["Role"]
    zappa.schedule_events(lambda_arn=function_arn, lambda_name=stage.function,
                          events=[stage.schedule])


def complete_on_moto(session: boto3.Session, stage: Stage) -> None:
    """What AWS's CloudFormation makes of the template (as deployed, conditions
    included) and moto's leaves out."""
    stack = session.client("cloudformation").describe_stacks(StackName=stage.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in stack["Parameters"]}
    table, ddb = stage.env["TABLE_NAME"], session.client("dynamodb")
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})
    ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True})
    _configuration_set(session, stage.env["SES_CONFIGURATION_SET"], outputs["FeedbackTopicArn"])
    sns = session.client("sns")
    alarm_email = parameters.get("AlarmEmail")  # the template's MailAlarms condition
    if alarm_email and not sns.list_subscriptions_by_topic(
            TopicArn=outputs["AlarmTopicArn"])["Subscriptions"]:
        sns.subscribe(TopicArn=outputs["AlarmTopicArn"], Protocol="email", Endpoint=alarm_email)
    if parameters.get("FunctionDeployed") != "yes":  # the template's Attach condition
        return
    functions = session.client("lambda")
    function_arn = functions.get_function_configuration(
        FunctionName=stage.function)["FunctionArn"]
    try:
        functions.get_function_event_invoke_config(FunctionName=stage.function,
                                                   Qualifier="$LATEST")
    except ClientError:
        functions.put_function_event_invoke_config(
            FunctionName=stage.function, Qualifier="$LATEST", MaximumRetryAttempts=2,
            MaximumEventAgeInSeconds=3600,
            DestinationConfig={"OnFailure": {"Destination": outputs["DeadLetterQueueArn"]}})
    _feedback_subscription(session, stage, function_arn, outputs["FeedbackTopicArn"])


def _configuration_set(session: boto3.Session, name: str, topic: str) -> None:
    sesv2, ses = session.client("sesv2"), session.client("ses")
    try:
        sesv2.get_configuration_set(ConfigurationSetName=name)
    except ClientError:
        sesv2.create_configuration_set(ConfigurationSetName=name,
                                       SendingOptions={"SendingEnabled": True})
    found = ses.describe_configuration_set(
        ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"])
    if not any(found.get("EventDestinations") or []):
        ses.create_configuration_set_event_destination(
            ConfigurationSetName=name, EventDestination={
                "Name": "feedback", "Enabled": True,
                "MatchingEventTypes": ["bounce", "complaint"],
                "SNSDestination": {"TopicARN": topic}})


def _feedback_subscription(session: boto3.Session, stage: Stage, function_arn: str,
                           topic: str) -> None:
    """The stack's FunctionDeployed=yes pass: the subscription and SNS's permission."""
    sns, functions = session.client("sns"), session.client("lambda")
    if not any(s["Endpoint"] == function_arn
               for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]):
        sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=function_arn)
    try:
        statements = json.loads(functions.get_policy(FunctionName=stage.function)["Policy"])
    except ClientError:
        statements = {"Statement": []}
    if not any(permissions.grants(s, "sns.amazonaws.com", topic)
               for s in statements["Statement"]):
        functions.add_permission(
            FunctionName=stage.function, StatementId=f"{stage.stack}-FeedbackInvoke",
            Action="lambda:InvokeFunction", Principal="sns.amazonaws.com", SourceArn=topic)


def verify_sender(session: boto3.Session, stage: Stage) -> None:
    """The sender's domain verified with Easy DKIM (moto reports both as Success)."""
    domain = stage.env["MAIL_FROM"].rpartition("@")[2]
    session.client("ses").verify_domain_identity(Domain=domain)


HEALTHY_ACCOUNT = {"ProductionAccessEnabled": True, "SendingEnabled": True,
                   "EnforcementStatus": "HEALTHY",
                   "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0,
                                 "SentLast24Hours": 12.0}}


def answer_ses_account(session: boto3.Session, details: dict) -> None:
    """SESv2 GetAccount answers ``details`` (moto has no such route)."""

    def answer(**_):
        return AWSResponse("https://email.amazonaws.com/v2/email/account", 200, {}, None), \
            json.loads(json.dumps(details))

    session.events.register("before-call.sesv2.GetAccount", answer)


def pending_email_subscriptions(session: boto3.Session) -> None:
    """SNS lists every email subscription as nobody-has-confirmed-it-yet."""

    def unconfirm(parsed, **_):
        for subscription in parsed.get("Subscriptions", []):
            if subscription["Protocol"] == "email":
                subscription["SubscriptionArn"] = "PendingConfirmation"

    session.events.register("after-call.sns.ListSubscriptionsByTopic", unconfirm)


def healthy_stage(session: boto3.Session, stage: Stage) -> str:
    """Everything the README's first deploy makes, in its order; the function's ARN."""
    from deploy import secret

    secret.ensure(session.client("ssm"), stage.env["SECRETS_PATH"])
    deploy_stack(session, stage)
    verify_sender(session, stage)
    function_arn = create_function(session, stage)
    flood_limits(session, stage)
    schedule(session, stage, function_arn)
    deploy_stack(session, stage, FunctionDeployed="yes")
    complete_on_moto(session, stage)
    return function_arn
