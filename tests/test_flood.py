"""Floods: the stage throttle and the reserved concurrency keep room for the job and the
SES feedback, bound the cost, and survive `zappa update` (Zappa's own code, on moto)."""

from __future__ import annotations

import io
import zipfile

import pytest

from deploy import lambda_runner, limits
from tests.conftest import ROOT

STAGES = ("dev", "prod")
# One scheduled run, a late one overlapping it, one SES feedback delivery.
ASYNC_HEADROOM = 3
# Lambda keeps 100 executions of an account unreserved; 1,000 is the usual quota (a new
# account may start lower: README, "Before the first deploy").
UNRESERVED_MINIMUM, USUAL_QUOTA = 100, 1000


def zappa_cli(stage: str):
    from zappa.cli import ZappaCLI

    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_settings(str(ROOT / "zappa_settings.json"))
    return cli


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_can_never_take_the_executions_the_job_and_feedback_need(stage):
    reserved = zappa_cli(stage).lambda_concurrency  # what Zappa applies on every update
    assert reserved == lambda_runner.stage_settings(stage)["lambda_concurrency"]
    assert limits.api_concurrency(limits.THROTTLE[stage]) + ASYNC_HEADROOM <= reserved


def test_both_stages_fit_an_account_with_the_usual_quota():
    reserved = sum(zappa_cli(stage).lambda_concurrency for stage in STAGES)
    assert reserved + UNRESERVED_MINIMUM <= USUAL_QUOTA


def test_a_month_long_flood_at_the_throttle_costs_a_bounded_amount():
    requests = limits.THROTTLE["prod"].rate * 86_400 * 30
    api_gateway = requests / 1e6 * 3.70  # USD per million REST API requests (eu-central-1)
    assert requests < 14e6 and api_gateway < 55


@pytest.fixture
def zappa(moto_endpoint):
    """Zappa's own core, talking to an empty moto account."""
    import urllib.request

    import boto3

    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    from zappa.core import Zappa

    return Zappa(boto_session=boto3.session.Session(region_name="eu-central-1"),
                 runtime="python3.13", architecture="arm64")


def small_zip() -> bytes:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    pass\n")
    return code.getvalue()


def test_zappa_update_puts_back_the_settings_concurrency_and_erases_a_hand_set_one(zappa):
    from tests.test_package import create_function
    from tracker import aws

    functions = aws.client("lambda")
    create_function(functions, "esim-tracker-prod", {})
    functions.put_function_concurrency(FunctionName="esim-tracker-prod",
                                       ReservedConcurrentExecutions=3)  # by hand
    cli = zappa_cli("prod")

    zappa.update_lambda_function(None, "esim-tracker-prod", local_zip=small_zip(),
                                 concurrency=cli.lambda_concurrency)
    assert functions.get_function_concurrency(FunctionName="esim-tracker-prod")[
        "ReservedConcurrentExecutions"] == 25

    # Without the setting, an update deletes whatever was set by hand.
    zappa.update_lambda_function(None, "esim-tracker-prod", local_zip=small_zip(),
                                 concurrency=None)
    assert "ReservedConcurrentExecutions" not in functions.get_function_concurrency(
        FunctionName="esim-tracker-prod")


def test_the_stage_throttle_is_set_and_read_back_and_zappas_update_never_touches_it(zappa):
    """What `zappa update` sends for the stage: a new deployment on it, and an update of
    logging, metrics and caching. A stage's settings are the stage's own and a redeploy
    to it keeps them (https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-deploy-api.html);
    moto instead builds a new stage at each deployment, so its end state proves nothing
    here and the calls are what the test reads."""
    from tracker import aws

    apigateway = aws.client("apigateway")
    api_id = apigateway.create_rest_api(name="esim-tracker-prod")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="ANY",
                          authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="ANY",
                               type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="prod")
    assert limits.rest_api_id(apigateway, "esim-tracker-prod") == api_id
    assert limits.current(apigateway, api_id, "prod") is None
    limits.apply(apigateway, api_id, "prod", limits.THROTTLE["prod"])
    assert limits.current(apigateway, api_id, "prod") == limits.THROTTLE["prod"]

    calls = []
    zappa.apigateway_client.meta.events.register(
        "provide-client-params.api-gateway",
        lambda params, model, **_: calls.append((model.name, params)))
    cli = zappa_cli("prod")
    zappa.deploy_api_gateway(api_id, "prod", cache_cluster_enabled=cli.stage_config.get(
        "cache_cluster_enabled", False))  # what `zappa update` runs for the stage

    assert [name for name, _ in calls] == ["CreateDeployment", "UpdateStage"]
    deployment, stage = calls[0][1], calls[1][1]
    assert deployment["stageName"] == "prod" and not {
        "canarySettings", "methodSettings"} & set(deployment)
    assert stage["patchOperations"]
    assert not any("throttling" in op["path"] for op in stage["patchOperations"])
