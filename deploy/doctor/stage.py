"""What a stage should be (its Zappa settings) and what it is (its live AWS resources).

The settings are read by Zappa's own code, ``extends`` resolved key by key as
``zappa deploy`` resolves it, and every name Zappa derives from them (the function, the
follow-up job's rule) is computed by Zappa's own functions, so the doctor looks where
Zappa put things. What the operations stack made comes from its outputs.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "zappa_settings.json"
JOB = "handlers.followup.run"  # the scheduled follow-up job (CONTRACT.md)
# Slow answers are an answer too: a doctor that hangs helps nobody.
AWS_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard"})


class UnknownStage(LookupError):
    """The settings file has no such stage."""


class Missing(Exception):
    """A check cannot run because something it reads is not there (said once, above)."""


@dataclass(frozen=True)
class Stage:
    """A stage as its settings describe it."""

    name: str
    settings: dict  # the stage's own settings, ``extends`` resolved
    function: str  # the Lambda function Zappa names for it
    rule: str  # the EventBridge rule Zappa names for the follow-up job
    schedule: dict  # the follow-up job's entry in the settings' ``events``
    settings_file: Path

    @property
    def region(self) -> str:
        return self.settings["aws_region"]

    @property
    def env(self) -> dict:
        """The variables Zappa writes into the package (``environment_variables``)."""
        return self.settings.get("environment_variables") or {}

    @property
    def stack(self) -> str:
        """The operations stack's name, as the README deploys it."""
        return f"{self.function}-operations"

    def zappa(self, command: str) -> str:
        """A Zappa command line for this stage, with the settings file if not the default."""
        extra = "" if self.settings_file == SETTINGS else f" -s {self.settings_file}"
        return f"zappa {command} {self.name}{extra}"


def load(name: str, settings_file: Path = SETTINGS) -> Stage:
    """Read a stage from a Zappa settings file, as Zappa reads it."""
    import slugify
    from zappa.cli import ZappaCLI
    from zappa.core import Zappa
    from zappa.utilities import validate_name

    cli = ZappaCLI()
    cli.api_stage = name
    cli.load_settings_file(str(settings_file))
    if name not in cli.zappa_settings:
        raise UnknownStage(f"no stage {name!r} in {settings_file}")
    settings = cli.stage_config
    # ZappaCLI.load_settings names the function so (it would also build AWS clients).
    function = slugify.slugify(validate_name(settings["project_name"]) + "-" + name)
    schedule = next((event for event in settings.get("events", [])
                     if event.get("function") == JOB and event.get("expression")), None)
    if schedule is None:
        raise UnknownStage(f"stage {name!r} has no scheduled event for {JOB}")
    naming = Zappa(load_credentials=False, aws_region=settings["aws_region"],
                   runtime=settings["runtime"], architecture=settings.get("architecture"))
    return Stage(name=name, settings=settings, function=function,
                 rule=naming.get_scheduled_event_name(schedule, JOB, function),
                 schedule=schedule, settings_file=Path(settings_file))


def not_found(error: ClientError) -> bool:
    """Tell whether AWS answered that the thing asked for does not exist."""
    code = error.response.get("Error", {}).get("Code", "")
    return code.endswith("NotFoundException") or code in {"ResourceNotFound", "NotFound"}


class Live:
    """The stage's live resources, each read once, with the maintainer's credentials."""

    def __init__(self, stage: Stage, session: boto3.Session | None = None):
        self.stage = stage
        self.session = session or boto3.Session(region_name=stage.region)
        self._clients: dict = {}

    def client(self, service: str):
        """A boto3 client of the stage's region, built once."""
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.stage.region, config=AWS_CONFIG)
        return self._clients[service]

    @functools.cached_property
    def stack(self) -> dict:
        """The operations stack as CloudFormation describes it; Missing when absent."""
        try:
            return self.client("cloudformation").describe_stacks(
                StackName=self.stage.stack)["Stacks"][0]
        except ClientError as error:
            if "does not exist" in error.response.get("Error", {}).get("Message", ""):
                raise Missing(f"no operations stack {self.stage.stack}") from error
            raise

    @property
    def outputs(self) -> dict:
        return {o["OutputKey"]: o["OutputValue"] for o in self.stack.get("Outputs", [])}

    def output(self, key: str) -> str:
        """One output of the operations stack."""
        if key not in self.outputs:
            raise Missing(f"the operations stack {self.stage.stack} has no output {key}")
        return self.outputs[key]

    @functools.cached_property
    def function(self) -> dict:
        """The function's configuration; Missing when it does not exist."""
        try:
            return self.client("lambda").get_function_configuration(
                FunctionName=self.stage.function)
        except ClientError as error:
            if not_found(error):
                raise Missing(f"no function {self.stage.function}") from error
            raise

    @functools.cached_property
    def policy(self) -> str:
        """The function's resource policy as Lambda stores it ("" when it has none)."""
        self.function  # noqa: B018 - a missing function is said so, not "no policy"
        try:
            return self.client("lambda").get_policy(FunctionName=self.stage.function)["Policy"]
        except ClientError as error:
            if not_found(error):
                return ""
            raise

    @functools.cached_property
    def rule(self) -> dict | None:
        """The follow-up job's EventBridge rule, or None."""
        try:
            return self.client("events").describe_rule(Name=self.stage.rule)
        except ClientError as error:
            if not_found(error):
                return None
            raise

    @property
    def statements(self) -> list[dict]:
        return json.loads(self.policy)["Statement"] if self.policy else []

    def subscriptions(self, topic_arn: str) -> list[dict]:
        """Every subscription of a topic, as SNS lists them."""
        pages = self.client("sns").get_paginator("list_subscriptions_by_topic")
        return [s for page in pages.paginate(TopicArn=topic_arn) for s in page["Subscriptions"]]

    @functools.cached_property
    def ses_account(self) -> dict:
        """SES's account details in the stage's region (SESv2 GetAccount)."""
        return self.client("sesv2").get_account()
