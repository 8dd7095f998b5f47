"""The flood limits (README, Floods and cost): the function's reserved concurrency and
the API stage's throttle. Without them a flood of the form takes every execution and
starves the follow-up job and the bounce feed; both survive ``zappa update``, but a
hand edit, an account quota too low for the reservation, or a new API loses them."""

from __future__ import annotations

from deploy import limits
from deploy.doctor.report import fail, ok, warn
from deploy.doctor.stage import Live, Stage


def reserved_concurrency(stage: Stage, live: Live):
    """The function keeps the settings' ``lambda_concurrency`` executions for itself."""
    wanted = stage.settings.get("lambda_concurrency")
    live.function  # noqa: B018 - a missing function is said so once, above
    found = live.client("lambda").get_function_concurrency(
        FunctionName=stage.function).get("ReservedConcurrentExecutions")
    if wanted is None:
        return warn("no lambda_concurrency in the settings: a flood of the form can take "
                    "every execution of the account and starve the job and the bounce feed")
    if found != wanted:
        return fail(f"reserved concurrency {found if found is not None else 'none'} "
                    f"(settings: {wanted}): {stage.zappa('update')} sets it again; should "
                    f"Lambda refuse it, the account's concurrency quota is too low (README, "
                    f"Before the first deploy)")
    return ok(f"{found} executions reserved, as lambda_concurrency")


def api_throttle(stage: Stage, live: Live):
    """The API stage answers 429 above its rate, before the function runs."""
    apigateway = live.client("apigateway")
    try:
        api_id = limits.rest_api_id(apigateway, stage.function)
    except LookupError:
        return fail(f"no REST API named {stage.function}: {stage.zappa('deploy')}")
    wanted = limits.for_stage(stage.name, stage.settings)
    found = limits.current(apigateway, api_id, stage.name)
    if found != wanted:
        have = (f"{found.rate:g} a second, bursts of {found.burst}" if found
                else "none of its own (the account's 10,000 a second)")
        return fail(f"the API stage's throttle is {have}, not {wanted.rate:g} a second with "
                    f"bursts of {wanted.burst}: python -m deploy.limits {stage.name}")
    return ok(f"{wanted.rate:g} requests a second, bursts of {wanted.burst}")
