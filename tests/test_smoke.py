"""make smoke's flow (deploy/smoke) against moto's server, as far as moto goes.

The run is the real one: the throwaway settings and policy, the secrets, the operations
template through moto's CloudFormation, Zappa's own CLI deploying, updating and
undeploying (in this process, with the package tests/test_package.py builds), the
doctor, the form over HTTP, the table reads, the teardown and its inventory. What moto
cannot do is given by ``OnMoto``, each for a stated reason; those steps are the ones only
a real ``make smoke`` proves:
- API Gateway cannot run the function (moto runs Lambda code only in Docker): the API's
  URL is a local server running the app on the stage's table, secrets and sender;
- ``zappa invoke`` likewise: the packaged handler runs through deploy/lambda_runner.py
  with the function's real environment, as Lambda would run it;
- SES's mailbox simulator answers nothing on moto: the test delivers the bounce and the
  complaint SES would publish (event-publishing records from the stage's topic) to the
  packaged SES handler;
- moto's CloudFormation skips part of the template: tests/stagekit.py completes it;
- Zappa's status check (a GET through API Gateway) and its Function URL clean-up
  (moto has no ListFunctionUrlConfigs) are skipped; SESv2 GetAccount answers through
  botocore's hook (a sandbox account, which the smoke run must tolerate).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest

from deploy import lambda_runner, smoke
from deploy.doctor import CHECKS
from deploy.doctor.stage import JOB
from deploy.smoke import traveller
from deploy.smoke.platform import Aws, SmokeFailed
from tests import stagekit
from tests.conftest import ACCOUNT
from tests.stagekit import serve
from tests.zappa_moto import stand_in_layers

pytestmark = pytest.mark.package


class OnMoto(Aws):
    """The smoke run's platform on moto; see the module's docstring for each stand-in."""

    def __init__(self, session, monkeypatch, package: Path, moto_endpoint: str):
        super().__init__(session)
        self.package, self.endpoint = package, moto_endpoint
        self.built: Path | None = None  # the zip Zappa last uploaded
        self.stops = []
        from zappa.cli import ZappaCLI
        from zappa.core import Zappa

        platform = self

        def create_package(cli, output=None, use_zappa_release=None):
            # What Zappa zips after the prebuild: the built package, with the settings
            # module Zappa writes for this stage (zappa/cli.py create_package).
            folder = Path(tempfile.mkdtemp(prefix="smoke-zip-"))
            cli.zip_path = str(folder / f"{cli.lambda_name}.zip")
            with zipfile.ZipFile(platform.package) as source, \
                    zipfile.ZipFile(cli.zip_path, "w", zipfile.ZIP_DEFLATED) as built:
                for item in source.infolist():
                    if item.filename != "zappa_settings.py":
                        built.writestr(item, source.read(item))
                built.writestr("zappa_settings.py", cli.get_zappa_settings_string())
            cli.handler_path = None
            platform.built = Path(shutil.copy(cli.zip_path, folder / "kept.zip"))

        monkeypatch.setattr(ZappaCLI, "execute_prebuild_script", lambda cli: None)
        monkeypatch.setattr(ZappaCLI, "create_package", create_package)
        monkeypatch.setattr(ZappaCLI, "touch_endpoint", lambda cli, url: None)
        monkeypatch.setattr(Zappa, "delete_lambda_function_url", lambda zappa, arn: None)

    def zappa(self, *args: str) -> str:
        if args[0] == "invoke":
            return self._run_packaged(args[1], [{"command": args[2]}])
        from zappa.cli import ZappaCLI

        try:
            ZappaCLI().handle(list(args))
        except SystemExit as exit:
            if exit.code:
                raise SmokeFailed(f"zappa {' '.join(args)} exited {exit.code}") from exit
        return ""

    def deploy_stack(self, stage, function_deployed):
        super().deploy_stack(stage, function_deployed)
        stagekit.complete_on_moto(self.session, stage)

    def api_url(self, stage):
        from app import create_app

        ssm = self.session.client("ssm")
        secret = {name: ssm.get_parameter(Name=f"{stage.env['SECRETS_PATH']}{name}",
                                          WithDecryption=True)["Parameter"]["Value"]
                  for name in ("SECRET_KEY", "ADDRESS_PEPPER")}
        app = create_app({
            **secret, "TABLE_NAME": stage.env["TABLE_NAME"],
            "MAIL_FROM": stage.env["MAIL_FROM"], "SEND_RATE": 0,
            "SES_CONFIGURATION_SET": stage.env["SES_CONFIGURATION_SET"],
            "SESSION_COOKIE_SECURE": False})  # plain HTTP here
        url, stop = serve(app)
        app.config["BASE_URL"] = url
        self.stops.append(stop)
        return url

    def ses_answers(self, stage, addresses):
        topic = self.session.client("cloudformation").describe_stacks(
            StackName=stage.stack)["Stacks"][0]["Outputs"]
        topic = {o["OutputKey"]: o["OutputValue"] for o in topic}["FeedbackTopicArn"]
        records = [ses_event(topic, stage.env["MAIL_FROM"], address) for address in addresses]
        # SNS's delivery to the function's own handler, which routes the stage's topic to
        # the SES handler (handlers/entry.py); only real SNS proves SNS delivers it.
        self._run_packaged(stage.name, [{"Records": records}])

    def _run_packaged(self, name, events) -> str:
        config = self.session.client("lambda").get_function_configuration(
            FunctionName=f"esim-tracker-{name}")
        # The function as moto holds it: what Lambda would give it, nothing more.
        function = lambda_runner.Function(
            name=config["FunctionName"], handler=config["Handler"],
            environment=(config.get("Environment") or {}).get("Variables", {}),
            region=self.session.region_name, memory_mb=config["MemorySize"],
            timeout_seconds=config["Timeout"],
            layers=tuple(layer["Arn"] for layer in config.get("Layers") or ()))
        run = lambda_runner.invoke(self.built, events, function=function,
                                   harness={"AWS_ENDPOINT_URL": self.endpoint})
        errors = [r.error for r in run.results if r.error]
        if errors:
            raise SmokeFailed(f"the function raised:\n{errors[0]}\n{run.log[-2000:]}")
        return json.dumps([r.value for r in run.results])

    def close(self):
        for stop in self.stops:
            stop()


def ses_event(topic: str, sender: str, address: str) -> dict:
    """An SNS record of what SES's event publishing sends for the simulator's answer."""
    kind = "Bounce" if address == traveller.BOUNCE else "Complaint"
    mail = {"timestamp": "2026-12-04T10:00:00.000Z", "source": sender,
            "sendingAccountId": ACCOUNT, "messageId": str(uuid.uuid4()),
            "destination": [address]}
    detail = ({"bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                          "bouncedRecipients": [{"emailAddress": address}]}}
              if kind == "Bounce" else
              {"complaint": {"complainedRecipients": [{"emailAddress": address}],
                             "complaintFeedbackType": "abuse"}})
    return {"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
        "Message": json.dumps({"eventType": kind, "mail": mail, **detail})}}


@pytest.fixture
def settings(tmp_path) -> Path:
    """The repository's settings with the brief's decision 4 applied (coldstart's part:
    INSTANTIATE_… in dev's aws_environment_variables; a no-op once it is on main)."""
    data = json.loads((stagekit.ROOT / "zappa_settings.json").read_text())
    data["dev"]["aws_environment_variables"] = {
        **(data["dev"].get("aws_environment_variables") or {}),
        "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT": "1"}
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def account():
    """SESv2 GetAccount: a sandbox account, as a maintainer's first one is."""
    return {**stagekit.HEALTHY_ACCOUNT, "ProductionAccessEnabled": False,
            "SendQuota": {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 0.0}}


@pytest.fixture
def on_moto(moto_endpoint, monkeypatch, account):
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    session = boto3.Session(region_name="eu-central-1")
    stagekit.answer_ses_account(session, account)
    # The account's sender, verified before any deploy (README, Before the first deploy).
    sender = lambda_runner.stage_settings("dev")["environment_variables"]["MAIL_FROM"]
    session.client("ses").verify_domain_identity(Domain=sender.rpartition("@")[2])
    stand_in_layers(session.client("lambda"), lambda_runner.stage_settings("dev")["layers"])
    platform = OnMoto(session, monkeypatch, lambda_runner.ensure_package("dev"), moto_endpoint)
    yield platform
    platform.close()


def everything_of(session: boto3.Session, name: str) -> list[str]:
    """Whatever of stage ``name`` the emulated account still holds, read independently."""
    found = [f["FunctionName"] for f in session.client("lambda").list_functions()["Functions"]]
    found += session.client("dynamodb").list_tables()["TableNames"]
    found += [s["StackName"] for s in session.client("cloudformation").list_stacks()[
        "StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    found += [r["RoleName"] for r in session.client("iam").list_roles()["Roles"]]
    found += session.client("sqs").list_queues().get("QueueUrls", [])
    found += [r["Name"] for r in session.client("events").list_rules()["Rules"]]
    found += [p["Name"] for p in session.client("ssm").describe_parameters()["Parameters"]]
    return [thing for thing in found if name in thing]


def stage_name(lines: list[str]) -> str:
    return next(line.split()[2] for line in lines if line.startswith("smoke: stage "))


def test_smoke_deploys_proves_and_removes_a_throwaway_stage(on_moto, settings):
    lines = []
    assert smoke.run(on_moto, on_moto.session, say=lines.append, settings=settings,
                     poll_seconds=0.2), "\n".join(lines)
    name = stage_name(lines)
    assert everything_of(on_moto.session, name) == []
    assert "smoke: passed; nothing left behind" in lines
    doctor = [line for line in lines if line.startswith("smoke:   ")]
    assert len(doctor) == len(CHECKS)  # a line each, so every check ran
    assert any("FAIL  SES account" in line and "sandbox" in line for line in doctor)
    assert any("ok    API throttle: 1 requests a second, bursts of 5" in line
               for line in doctor)  # dev's, which the throwaway stage extends
    # Three receipts and success@'s first check, nothing more. (moto counts each raw email
    # twice, its destination and its To header: moto/ses/models.py send_raw_email. Its
    # outbox page fails once Zappa's function is in the account: it asks for Docker.)
    quota = on_moto.session.client("ses").get_send_quota()
    assert quota["SentLast24Hours"] == 2 * 4


def test_a_failed_step_still_removes_everything(on_moto, settings, monkeypatch):
    monkeypatch.setattr(OnMoto, "ses_answers", lambda self, stage, addresses: None)
    lines = []
    assert not smoke.run(on_moto, on_moto.session, say=lines.append, settings=settings,
                         feedback_seconds=1, poll_seconds=0.2)
    assert any(line.startswith("smoke: FAILED: SmokeFailed: after 1 s, suppressed")
               for line in lines), "\n".join(lines)
    assert everything_of(on_moto.session, stage_name(lines)) == []
    assert not any(f"zappa invoke {stage_name(lines)}" in line for line in lines)


def test_the_doctor_stops_the_run_when_the_stage_is_not_healthy(on_moto, settings, account):
    account["SendQuota"] = {**account["SendQuota"], "MaxSendRate": 0.5}  # below SEND_RATE
    lines = []
    assert not smoke.run(on_moto, on_moto.session, say=lines.append, settings=settings)
    assert any("the doctor failed sending rate" in line for line in lines), "\n".join(lines)
    assert not any("the form, for SES's mailbox simulator …" in line for line in lines)
    assert everything_of(on_moto.session, stage_name(lines)) == []


def test_what_teardown_cannot_remove_is_listed_with_the_command(on_moto, settings, monkeypatch):
    real = OnMoto.zappa

    def no_undeploy(self, *args):
        if args[0] == "undeploy":
            raise SmokeFailed("zappa undeploy exited 1")
        return real(self, *args)

    monkeypatch.setattr(OnMoto, "zappa", no_undeploy)
    lines = []
    assert not smoke.run(on_moto, on_moto.session, say=lines.append, settings=settings,
                         poll_seconds=0.2)
    name = stage_name(lines)
    assert f"smoke: finish by hand: zappa undeploy {name}" in lines
    assert f"smoke: LEFT BEHIND: function esim-tracker-{name}" in lines
    # Everything else was still removed.
    assert set(everything_of(on_moto.session, name)) <= {
        f"esim-tracker-{name}", f"esim-tracker-{name}-handlers.followup.run",
        f"esim-tracker-{name}-ZappaLambdaExecutionRole"}
    assert f"esim-cancellations-{name}" not in everything_of(on_moto.session, name)


def test_the_throwaway_policy_is_devs_with_only_its_own_names(tmp_path):
    from deploy.smoke import throwaway

    made = throwaway.create(tmp_path, "smokeabc123")
    policy = made.policy_file.read_text()
    dev = (stagekit.ROOT / "deploy" / "policy-dev.json").read_text()
    assert policy == throwaway.renamed(dev, "smokeabc123") != dev
    assert "esim-cancellations-smokeabc123" in policy and "/esim-tracker/smokeabc123/" in policy
    assert "-dev" not in policy and "/dev/" not in policy
    settings = json.loads(made.settings_file.read_text())["smokeabc123"]
    assert settings["extends"] == "dev"
    assert [e["function"] for e in settings["events"]] == [JOB]


def test_smoke_refuses_to_run_against_an_emulator(capsys):
    assert smoke.main() == 2
    assert "real AWS only" in capsys.readouterr().err


def test_daytime_zone_puts_now_in_the_travellers_afternoon():
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    start = datetime(2026, 12, 4, tzinfo=UTC)
    for hour in range(24):
        now = start + timedelta(hours=hour, minutes=30)
        local = now.astimezone(ZoneInfo(traveller.daytime_zone(now)))
        assert local.hour == 13, (hour, traveller.daytime_zone(now))
