"""What the smoke run asks of AWS beyond plain boto3 reads and writes, in one place.

On AWS: Zappa's own command line, the API's URL as Zappa finds it, the operations
stack as CloudFormation deploys it, and SES's mailbox simulator, which answers by
itself. tests/test_smoke.py gives its own for what moto cannot do (no Lambda code runs
on moto without Docker, and its CloudFormation skips part of the template): that is all
these four are.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3

from deploy.doctor.stage import ROOT, Stage

TEMPLATE = ROOT / "deploy" / "operations.yaml"


class SmokeFailed(Exception):
    """A step of the smoke run did not do what it must."""


class Aws:
    """Real AWS, with the maintainer's credentials."""

    def __init__(self, session: boto3.Session | None = None):
        self.session = session or boto3.Session()

    def zappa(self, *args: str) -> str:
        """Run Zappa's command line from the repository, as the README does; its output."""
        zappa = Path(sys.executable).with_name("zappa")
        done = subprocess.run([str(zappa), *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if done.returncode:
            raise SmokeFailed(f"zappa {' '.join(args)} exited {done.returncode}:\n"
                              f"{done.stdout[-3000:]}")
        return done.stdout

    def deploy_stack(self, stage: Stage, function_deployed: str) -> None:
        """Create (``no``) or update (``yes``) the operations stack; wait for the outcome.

        No AlarmEmail: nobody is paged for a stage that lives ten minutes.
        """
        cfn = self.session.client("cloudformation", region_name=stage.region)
        arguments = dict(StackName=stage.stack, TemplateBody=TEMPLATE.read_text(), Parameters=[
            {"ParameterKey": key, "ParameterValue": value} for key, value in {
                "Stage": stage.name, "TableName": stage.env["TABLE_NAME"],
                "FunctionDeployed": function_deployed, "AlarmEmail": ""}.items()])
        creating = function_deployed == "no"
        (cfn.create_stack if creating else cfn.update_stack)(**arguments)
        waiter = cfn.get_waiter("stack_create_complete" if creating else "stack_update_complete")
        try:
            waiter.wait(StackName=stage.stack, WaiterConfig={"Delay": 5, "MaxAttempts": 180})
        except Exception as error:
            raise SmokeFailed(f"stack {stage.stack}: {error} (aws cloudformation "
                              f"describe-stack-events --stack-name {stage.stack})") from error

    def api_url(self, stage: Stage) -> str:
        """The stage's API Gateway URL (zappa/core.py get_api_url, as ``zappa status``)."""
        from zappa.core import Zappa

        zappa = Zappa(boto_session=self.session, aws_region=stage.region,
                      runtime=stage.settings["runtime"],
                      architecture=stage.settings.get("architecture"))
        url = zappa.get_api_url(stage.function, stage.name)
        if not url:
            raise SmokeFailed(f"no API Gateway for {stage.function}")
        return url

    def ses_answers(self, stage: Stage, addresses: list[str]) -> None:
        """Nothing to do: SES's mailbox simulator bounces and complains by itself, through
        the configuration set's event destination, the feedback topic and the function."""
