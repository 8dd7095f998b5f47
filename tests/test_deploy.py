"""Zappa's own deploy, update, schedule and rollback against moto, held to AWS's rules.

moto accepts any role for any service and any number of permissions, so a green run
against it proves little by itself. These tests run Zappa's CLI as a maintainer runs it
(tests/zappa_moto.py), record what it hands to AWS, and judge that by the rules moto
does not enforce: each role Zappa passes to a service must be one that service may
assume (tests/iam.py evaluates the trust policy IAM's way); the function's resource
policy must keep its size over any number of updates (Lambda refuses one over 20 KB);
an update that fails half-way must leave something the runbook repairs. They also run
the `make deploy` and `make update` wrappers with a dirty tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy import lambda_runner
from tests import awscalls, iam
from tests.conftest import ROOT

pytestmark = pytest.mark.package

STAGE = "dev"
ON = iam.stage(STAGE)
TOPIC = lambda_runner.stage_settings(STAGE)["environment_variables"]["FEEDBACK_TOPIC_ARN"]
RULE = f"arn:aws:events:{ON.region}:{ON.account}:rule/{ON.function}-handlers.followup.run"
STACK = f"esim-tracker-{STAGE}-operations"
# The trust policy of the role before this release: Lambda and API Gateway only.
EARLIER_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com",
                                                 "apigateway.amazonaws.com"]},
    "Action": "sts:AssumeRole"}]}
# Before this release Zappa also subscribed the function to the feedback topic.
EARLIER_EVENTS = [{"function": "handlers.ses_events.handle",
                   "event_source": {"arn": TOPIC, "events": ["sns:Publish"]}}]


@pytest.fixture(scope="module")
def package() -> Path:
    return lambda_runner.ensure_package(STAGE)


def reset(moto_endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()


def settings_file(folder: Path, *, earlier: bool = False) -> Path:
    """zappa_settings.json with the deploy's endpoint check off (moto's API has no URL);
    ``earlier``: with the SNS event source the stage had before this release."""
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    settings[STAGE]["touch"] = False
    if earlier:
        settings[STAGE]["events"] = settings[STAGE]["events"] + EARLIER_EVENTS
    path = folder / ("earlier.json" if earlier else "settings.json")
    path.write_text(json.dumps(settings))
    return path


@dataclass
class Zappa:
    """Zappa's CLI against moto, every call it makes kept in ``calls``."""

    endpoint: str
    package: Path
    folder: Path
    runs: list[tuple[str, list[dict]]] = field(default_factory=list)

    def __call__(self, *args: str, fail: str | None = None, earlier: bool = False,
                 check: bool = True) -> subprocess.CompletedProcess:
        calls = self.folder / f"calls-{len(self.runs)}.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "tests.zappa_moto", str(calls), str(self.package),
             str(settings_file(self.folder, earlier=earlier)), *([fail] if fail else []),
             "--", *args],
            cwd=ROOT, env=aws_env(self.endpoint), capture_output=True, text=True, timeout=600)
        self.runs.append((" ".join(args), awscalls.read(calls)))
        if check:
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def calls(self, operation: str, run: int | None = None) -> list[dict]:
        runs = self.runs if run is None else [self.runs[run]]
        return [c for _, found in runs for c in found if c["operation"] == operation]


def aws_env(endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return dict(env, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=ON.region)


def operations_stack() -> None:
    """deploy/operations.yaml on moto, before the function (FunctionDeployed=no): moto
    builds what it knows (the topic, the queue, the table) and skips the rest."""
    from tracker import aws

    aws.client("cloudformation").create_stack(
        StackName=STACK, TemplateBody=(ROOT / "deploy" / "operations.yaml").read_text(),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": STAGE},
                    {"ParameterKey": "TableName", "ParameterValue": ON.table}])


def stack_permission() -> None:
    """The FunctionDeployed=yes pass's permission, as CloudFormation makes it: one
    AddPermission with the template's properties, named after the stack and resource.
    (moto's own CloudFormation puts it on a published version, not on the function.)"""
    from cfnlint.decode import decode

    from tracker import aws

    template, problems = decode(str(ROOT / "deploy" / "operations.yaml"))
    assert not problems
    resource = template["Resources"]["FeedbackInvokesFunction"]
    assert resource["Condition"] == "Attach"
    properties = resource["Properties"]
    assert properties["FunctionName"] == {"Fn::Sub": "esim-tracker-${Stage}"}
    assert properties["SourceArn"] == {"Ref": "FeedbackTopic"}
    aws.client("lambda").add_permission(
        FunctionName=ON.function, StatementId=f"{STACK}-FeedbackInvokesFunction-1A2B3C4D5E6F",
        Action=properties["Action"], Principal=properties["Principal"], SourceArn=TOPIC)


def resource_policy() -> list[dict]:
    from tracker import aws

    return json.loads(aws.client("lambda").get_policy(FunctionName=ON.function)["Policy"])[
        "Statement"]


def rules() -> list[str]:
    from tracker import aws

    return aws.client("events").list_rule_names_by_target(TargetArn=ON.arn(
        "lambda", f"function:{ON.function}"))["RuleNames"]


def shape(statements: list[dict]) -> list[tuple]:
    """What a statement grants, less its id: who, on what condition."""
    return sorted((s["Principal"]["Service"], s["Action"], json.dumps(s.get("Condition"),
                                                                      sort_keys=True))
                  for s in statements)


# The statements the function's resource policy holds: EventBridge for the schedule
# rule (Zappa's, renewed by each schedule) and SNS for the stage's own feedback topic
# (the operations stack's, which no update touches).
EXPECTED = shape([
    {"Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction",
     "Condition": {"StringEquals": {"AWS:SourceAccount": ON.account},
                   "ArnLike": {"AWS:SourceArn": RULE}}},
    {"Principal": {"Service": "sns.amazonaws.com"}, "Action": "lambda:InvokeFunction",
     "Condition": {"ArnLike": {"AWS:SourceArn": TOPIC}}},
])


@pytest.fixture(scope="module")
def stage(moto_endpoint, package, tmp_path_factory):
    """A stage deployed as the README says, on an account where the role already exists
    with the trust of the release before; then updated and scheduled again and again.
    Returns Zappa's runs and the resource policy after each."""
    from tracker import aws

    reset(moto_endpoint)
    aws.client("iam").create_role(RoleName=ON.role.rsplit("/", 1)[1],
                                  AssumeRolePolicyDocument=json.dumps(EARLIER_TRUST))
    zappa = Zappa(moto_endpoint, package, tmp_path_factory.mktemp("zappa"))
    operations_stack()
    zappa("deploy", STAGE)
    stack_permission()
    policies = [resource_policy()]
    for command in ("update", "schedule", "update", "schedule"):
        zappa(command, STAGE)
        policies.append(resource_policy())
    return zappa, policies


def handed_roles(zappa: Zappa) -> list[tuple[str, str]]:
    """(service principal, role) for every role Zappa handed a service."""
    from tracker import aws

    handed = [("events.amazonaws.com", c["params"]["RoleArn"]) for c in zappa.calls("PutRule")]
    handed += [("lambda.amazonaws.com", c["params"]["Role"])
               for op in ("CreateFunction", "UpdateFunctionConfiguration")
               for c in zappa.calls(op) if "Role" in c["params"]]
    # API Gateway invokes with the role named as the integration's credentials in the
    # template Zappa gives CloudFormation.
    [stack] = {c["params"]["StackName"] for c in zappa.calls("CreateStack")}
    template = aws.client("cloudformation").get_template(StackName=stack)["TemplateBody"]
    template = template if isinstance(template, dict) else json.loads(template)
    handed += [("apigateway.amazonaws.com", r["Properties"]["Integration"]["Credentials"])
               for r in template["Resources"].values()
               if r["Type"] == "AWS::ApiGateway::Method"]
    return handed


def test_every_role_zappa_hands_a_service_is_one_that_service_may_assume(stage):
    from tracker import aws

    zappa, _ = stage
    handed = handed_roles(zappa)
    assert {principal for principal, _ in handed} == {
        "events.amazonaws.com", "lambda.amazonaws.com", "apigateway.amazonaws.com"}
    assert {role for _, role in handed} == {ON.role}
    # The role's trust as Zappa left it on the account (it had the earlier one).
    trust = aws.client("iam").get_role(RoleName=ON.role.rsplit("/", 1)[1])["Role"][
        "AssumeRolePolicyDocument"]
    for principal, role in set(handed):
        # Without condition keys: how PutRule checks the role is not documented.
        assert iam.trusted(role, ON.account, trust, principal, {}) == "Allowed", principal
    # EventBridge assuming it for one of this account's rules, and for another's.
    runtime = {"aws:SourceAccount": ON.account, "aws:SourceArn": RULE}
    assert iam.trusted(ON.role, ON.account, trust, "events.amazonaws.com", runtime) == "Allowed"
    elsewhere = {"aws:SourceAccount": "999999999999",
                 "aws:SourceArn": "arn:aws:events:eu-central-1:999999999999:rule/x"}
    assert iam.trusted(ON.role, ON.account, trust, "events.amazonaws.com", elsewhere) != \
        "Allowed"
    # No other service may: SNS invokes through the resource policy, not the role.
    for principal in ("sns.amazonaws.com", "scheduler.amazonaws.com", "ec2.amazonaws.com"):
        assert iam.trusted(ON.role, ON.account, trust, principal, {}) != "Allowed", principal


def test_the_resource_policy_keeps_its_statements_over_updates_and_schedules(stage):
    _, policies = stage
    for statements in policies:
        assert shape(statements) == EXPECTED
    sizes = {len(json.dumps({"Version": "2012-10-17", "Statement": s})) for s in policies}
    assert len(sizes) == 1 and sizes.pop() < 20_000 // 10  # Lambda's limit is 20 KB


def test_updates_leave_the_feedback_subscription_and_its_permission_alone(stage):
    zappa, _ = stage
    for operation in ("Subscribe", "Unsubscribe", "ListSubscriptionsByTopic"):
        assert zappa.calls(operation) == [], operation
    removed = {c["params"]["StatementId"] for c in zappa.calls("RemovePermission")}
    added = [c["params"] for c in zappa.calls("AddPermission")]
    assert {a["Principal"] for a in added} == {"events.amazonaws.com"}
    assert removed <= {a["StatementId"] for a in added}  # only its own, earlier ones


@pytest.fixture
def fresh_stage(moto_endpoint, package, tmp_path):
    """A stage deployed as the README says, alone on an empty account."""
    reset(moto_endpoint)
    zappa = Zappa(moto_endpoint, package, tmp_path)
    operations_stack()
    zappa("deploy", STAGE)
    stack_permission()
    assert rules() == [RULE.rsplit("/", 1)[1]] and shape(resource_policy()) == EXPECTED
    return zappa


def test_an_update_refused_half_way_loses_the_rule_and_zappa_schedule_restores_it(
        fresh_stage):
    """README, Runbook: the doctor after every update; `zappa schedule` repairs."""
    zappa = fresh_stage
    failed = zappa("update", STAGE, fail="events.PutRule", check=False)
    assert failed.returncode != 0 and "cannot be assumed" in failed.stdout + failed.stderr
    # schedule_events deletes the rule and its permission before it creates them again.
    assert rules() == []
    assert shape(resource_policy()) == [s for s in EXPECTED if s[0] == "sns.amazonaws.com"]

    # Rolling back puts the earlier code back and nothing else: the rule stays lost.
    zappa("rollback", STAGE, "-n", "1")
    rollback = {c["operation"] for c in zappa.runs[-1][1]}
    assert "UpdateFunctionCode" in rollback
    assert not rollback & {"PutRule", "PutTargets", "AddPermission", "RemovePermission",
                           "CreateStack", "UpdateStack", "Subscribe", "Unsubscribe"}
    assert rules() == []

    zappa("schedule", STAGE)
    assert rules() == [RULE.rsplit("/", 1)[1]] and shape(resource_policy()) == EXPECTED


def test_rollback_brings_back_the_settings_the_earlier_zip_carries(package):
    """Zappa writes the stage's variables and event mapping into the zip's own
    zappa_settings.py, read at every cold start: they move with the code."""
    with zipfile.ZipFile(package) as archive:
        settings = archive.read("zappa_settings.py").decode()
    env = lambda_runner.stage_settings(STAGE)["environment_variables"]
    assert "ENVIRONMENT_VARIABLES=" in settings and "AWS_EVENT_MAPPING=" in settings
    for name, value in env.items():
        assert f"'{name}': '{value}'" in settings, name


def test_an_earlier_stage_moves_its_subscription_to_the_stack_and_sheds_zappas_leftovers(
        moto_endpoint, package, tmp_path):
    from deploy import migrate_feedback
    from tracker import aws

    reset(moto_endpoint)
    zappa = Zappa(moto_endpoint, package, tmp_path)
    operations_stack()
    # The stage as the release before left it: Zappa's subscription and statements.
    zappa("deploy", STAGE, earlier=True)
    zappa("schedule", STAGE, earlier=True)
    sns = [s for s in resource_policy() if s["Principal"]["Service"] == "sns.amazonaws.com"]
    assert len(sns) >= 3  # two with random ids, one sns-<topic>; one more each time
    subscribed = aws.client("sns").list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
    assert len(subscribed) == 1

    # This release: `make update` (Zappa, then the stack's FunctionDeployed=yes pass).
    zappa("update", STAGE)
    stack_permission()
    keep = aws.client("sns").subscribe(TopicArn=TOPIC, Protocol="lambda", Endpoint=ON.arn(
        "lambda", f"function:{ON.function}"), ReturnSubscriptionArn=True)["SubscriptionArn"]
    lambda_client, sns_client = aws.client("lambda"), aws.client("sns")
    statements, subscriptions = migrate_feedback.left_behind(
        lambda_client, sns_client, function=ON.function, topic=TOPIC, keep=keep)
    assert len(statements) == len(sns) and keep not in subscriptions
    migrate_feedback.remove(lambda_client, sns_client, function=ON.function,
                            statements=statements, subscriptions=subscriptions)

    assert shape(resource_policy()) == EXPECTED
    assert [s["SubscriptionArn"] for s in sns_client.list_subscriptions_by_topic(
        TopicArn=TOPIC)["Subscriptions"]] == [keep]
    assert migrate_feedback.left_behind(lambda_client, sns_client, function=ON.function,
                                        topic=TOPIC, keep=keep) == ([], [])


# --- make deploy, make update ----------------------------------------------------------

def clone(tmp_path: Path) -> Path:
    """The committed tree in a fresh clone, sharing this checkout's .venv."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    folder = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "checkout", "-q", head], cwd=folder, check=True)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    return folder


def wrapper(folder: Path, target: str, log: Path, *,
            zappa_fails: bool = False) -> subprocess.CompletedProcess:
    """`make <target> STAGE=dev` with Zappa, the AWS CLI and the doctor replaced by
    scripts that only note their arguments, and AWS out of reach."""
    stubs = {}
    for name in ("zappa", "aws", "limits", "doctor"):
        stub = log.parent / name
        fails = "exit 1\n" if name == "zappa" and zappa_fails else ""
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{fails}')
        stub.chmod(0o755)
        stubs[name] = str(stub)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="none",
               AWS_SECRET_ACCESS_KEY="none")
    return subprocess.run(
        ["make", "-o", ".venv/.installed", target, "STAGE=dev", f"ZAPPA={stubs['zappa']}",
         f"AWS_CLI={stubs['aws']}", f"LIMITS={stubs['limits']}",
         f"DOCTOR={stubs['doctor']}"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("target", ["deploy", "update"])
def test_the_wrapper_refuses_an_uncommitted_tree_before_any_aws_call(tmp_path, target):
    folder, log = clone(tmp_path), tmp_path / "calls.log"
    policy = folder / "deploy" / "policy-dev.json"
    policy.write_text(policy.read_text().replace("dynamodb:GetItem", "dynamodb:*"))
    done = wrapper(folder, target, log)
    assert done.returncode != 0
    assert "refusing to deploy uncommitted" in done.stderr and "policy-dev.json" in done.stderr
    assert not log.exists()  # neither Zappa, nor the AWS CLI, nor the doctor ran


@pytest.mark.parametrize("target", ["deploy", "update"])
def test_the_wrapper_runs_zappa_then_the_stack_then_the_limits_then_the_doctor(tmp_path,
                                                                             target):
    folder, log = clone(tmp_path), tmp_path / "calls.log"
    done = wrapper(folder, target, log)
    assert done.returncode == 0, done.stderr
    zappa, *stack, limits, doctor = log.read_text().splitlines()
    assert zappa == f"zappa {target} dev"
    for line in stack:  # in the stage's region, whatever the shell's
        assert line.startswith("aws cloudformation deploy --template-file "
                               "deploy/operations.yaml --stack-name esim-tracker-dev-operations"
                               " --region eu-central-1 ")
    # A deploy makes the function anew: its attachments are made anew too (a `no` pass,
    # then `yes`), as CloudFormation does not re-create what was deleted outside it.
    passes = [line.split("--parameter-overrides ")[1].split()[0] for line in stack]
    assert passes == (["FunctionDeployed=no", "FunctionDeployed=yes"] if target == "deploy"
                      else ["FunctionDeployed=yes"])
    # A new API (the first deploy's) has no throttle of its own until this sets it, and
    # the doctor fails a stage without it.
    assert limits == "limits dev"
    assert doctor == "doctor dev"


@pytest.mark.parametrize("target", ["deploy", "update"])
def test_a_failed_zappa_step_still_runs_the_doctor_and_fails(tmp_path, target):
    """A half-failed update can leave the stage without its rule: the doctor says so."""
    folder, log = clone(tmp_path), tmp_path / "calls.log"
    done = wrapper(folder, target, log, zappa_fails=True)
    assert done.returncode != 0
    assert log.read_text().splitlines() == [f"zappa {target} dev", "doctor dev"]
