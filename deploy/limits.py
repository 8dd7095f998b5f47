"""A stage's flood limits: API Gateway's stage throttle, beside the function's reserved
concurrency (zappa_settings.json ``lambda_concurrency``). Apply it, or check it.

    python -m deploy.limits prod           # make deploy/update run it (`zappa update` keeps it)
    python -m deploy.limits prod --check   # read only: exit 1 when it is not as below

Why these two, with numbers (README, "Floods and cost"): the API, the job and the SES
feedback share one function. API Gateway answers 429 above the stage's rate before
Lambda runs, so the API can hold at most about ``burst + rate x duration`` of the
function's reserved executions (prod: 10 + 5 x 1.5 s of a cold start = 18 of 25), and
the job and the feedback always find a free one. Reserved concurrency also caps what
any flood, or a slow DynamoDB, can run up in Lambda, and keeps the other stage from
taking prod's share of the account.

Both survive ``zappa update``: Zappa re-applies ``lambda_concurrency`` on every update
(core.update_lambda_function: put_function_concurrency when set, and it *deletes* any
reserved concurrency set by hand when the setting is unset), and it never touches a
stage's method settings (core.deploy_api_gateway: create_deployment, then update_stage
of logging, metrics and caching only). Only a new API (`zappa undeploy`, then
`zappa deploy`) needs this command again. Run with the maintainer's credentials.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from deploy.lambda_runner import function_name, stage_settings


@dataclass(frozen=True)
class Throttle:
    """API Gateway's token bucket: ``rate`` requests a second, ``burst`` at once."""

    rate: float
    burst: int


# A visit is 2 to 3 requests (the page, timezone.js, a redirect); a real day brings a few
# dozen. 5 a second is some hundred times that, and bounds a month-long flood to about
# 13 million requests (API Gateway about $50, Lambda about $10).
THROTTLE = {"dev": Throttle(rate=1, burst=5), "prod": Throttle(rate=5, burst=10)}
# What one API request can take at most while the function is cold (the cold start
# measured by `make bench` is under half a second; Lambda's own start adds to it).
COLD_REQUEST_SECONDS = 1.5


def for_stage(name: str, settings: dict) -> Throttle:
    """The throttle of stage ``name``, or of the stage its settings extend (a smoke run's
    throwaway stage extends dev)."""
    for key in (name, settings.get("extends")):
        if key in THROTTLE:
            return THROTTLE[key]
    raise LookupError(f"no throttle for stage {name!r}: add one to deploy/limits.py THROTTLE")


def api_concurrency(throttle: Throttle, seconds: float = COLD_REQUEST_SECONDS) -> float:
    """The most executions the API can hold at once under ``throttle``."""
    return throttle.burst + throttle.rate * seconds


def rest_api_id(apigateway, name: str) -> str:
    """The id of the REST API Zappa named ``name`` (the function's name)."""
    for page in apigateway.get_paginator("get_rest_apis").paginate():
        for api in page["items"]:
            if api["name"] == name:
                return api["id"]
    raise LookupError(f"no REST API named {name}: deploy the stage first")


def current(apigateway, api_id: str, stage: str) -> Throttle | None:
    """The stage's default throttle, None when it has none of its own."""
    settings = apigateway.get_stage(restApiId=api_id, stageName=stage).get(
        "methodSettings", {}).get("*/*")
    if not settings or "throttlingRateLimit" not in settings:
        return None
    return Throttle(rate=float(settings["throttlingRateLimit"]),
                    burst=int(settings["throttlingBurstLimit"]))


def apply(apigateway, api_id: str, stage: str, throttle: Throttle) -> None:
    """Set the stage's default method throttle (every resource and method: ``/*/*``)."""
    apigateway.update_stage(restApiId=api_id, stageName=stage, patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(throttle.rate)},
        {"op": "replace", "path": "/*/*/throttling/burstLimit",
         "value": str(throttle.burst)}])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    parser.add_argument("--check", action="store_true", help="read only; exit 1 on a difference")
    args = parser.parse_args(argv)
    import boto3

    settings = stage_settings(args.stage)
    apigateway = boto3.client("apigateway", region_name=settings["aws_region"])
    api_id = rest_api_id(apigateway, function_name(args.stage))
    wanted = for_stage(args.stage, settings)
    found = current(apigateway, api_id, args.stage)
    if args.check or found == wanted:
        print(f"stage throttle: {found} (wanted {wanted})", file=sys.stderr)
        return 0 if found == wanted else 1
    apply(apigateway, api_id, args.stage, wanted)
    print(f"stage throttle set: {wanted}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
