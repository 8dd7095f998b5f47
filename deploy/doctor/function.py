"""The function: its configuration, its real environment, its dead-letter destination."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from deploy.doctor.report import fail, ok, warn
from deploy.doctor.stage import Live, Missing, Stage, not_found
from tracker.config import STORED_SECRETS

# Decision 4 of the brief: Zappa's handler reads it from the real environment at import.
INSTANTIATE = "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"


def stack_command(stage: Stage, overrides: str = "FunctionDeployed=yes") -> str:
    """The README's operations-stack deploy; the CLI keeps the parameters not named
    (aws/aws-cli#2599: UsePreviousValue for every existing parameter not overridden)."""
    return (f"aws cloudformation deploy --template-file deploy/operations.yaml "
            f"--stack-name {stage.stack} --region {stage.region} "
            f"--parameter-overrides {overrides}")


def reattach_command(stage: Stage) -> str:
    """The stack's attachments to the function (its subscription, SNS's permission, the
    dead-letter destination) made again. A ``FunctionDeployed=yes`` pass alone does
    nothing when the stack already says yes: CloudFormation does not re-create what was
    deleted outside it (a function re-created by `zappa undeploy` and `zappa deploy`
    loses its resource policy and its invoke config). A ``no`` pass removes the
    attachments, the ``yes`` pass makes them anew."""
    return f"{stack_command(stage, 'FunctionDeployed=no')} && {stack_command(stage)}"


def operations_stack(stage: Stage, live: Live):
    """The operations stack is deployed, with its pass that attaches it to the function."""
    try:
        stack = live.stack
    except Missing:
        return fail(f"no stack {stage.stack}: deploy it as the README's first deploy does "
                    f"(step 2, then step 4's pass with FunctionDeployed=yes): "
                    f"{stack_command(stage)} Stage={stage.name} "
                    f"TableName={stage.env.get('TABLE_NAME')}")
    status = stack["StackStatus"]
    deployed = {p["ParameterKey"]: p.get("ParameterValue")
                for p in stack.get("Parameters", [])}.get("FunctionDeployed")
    if status == "ROLLBACK_COMPLETE":  # its first creation failed: AWS updates it no more
        return fail(f"{stage.stack}'s creation rolled back: see why (aws cloudformation "
                    f"describe-stack-events --stack-name {stage.stack} --region "
                    f"{stage.region}), fix, then aws cloudformation delete-stack "
                    f"--stack-name {stage.stack} --region {stage.region} and the README's "
                    f"step 2 again, once what it kept (Retain) is cleared as the README's "
                    f"Runbook says: its table {stage.env.get('TABLE_NAME')}, log group and "
                    f"dead-letter queue, if they were made")
    if not status.endswith("_COMPLETE") or status == "DELETE_COMPLETE":
        return fail(f"{stage.stack} is {status}: aws cloudformation describe-stack-events "
                    f"--stack-name {stage.stack}, fix, then {stack_command(stage)}")
    if deployed != "yes":
        return fail(f"{stage.stack} has FunctionDeployed={deployed}, so nothing attaches the "
                    f"dead-letter queue or the feedback subscription: {stack_command(stage)}")
    if "ROLLBACK" in status:
        return warn(f"{stage.stack}'s last update rolled back ({status}): "
                    f"aws cloudformation describe-stack-events --stack-name {stage.stack}")
    return ok(f"{stage.stack} {status}, FunctionDeployed=yes")


def function_settings(stage: Stage, live: Live):
    """Runtime, architecture, handler, timeout and memory are the settings' ones."""
    settings = stage.settings
    wanted = {"Runtime": settings["runtime"],
              "Architectures": [settings.get("architecture", "x86_64")],
              "Handler": settings.get("lambda_handler", "handler.lambda_handler"),
              "Timeout": settings.get("timeout_seconds", 30),
              "MemorySize": settings.get("memory_size", 512)}
    found = live.function
    differ = [f"{key} {found.get(key)!r} (settings: {value!r})"
              for key, value in wanted.items() if found.get(key) != value]
    # The Parameters and Secrets extension's layer: without it every cold start reads
    # SSM through botocore (slower, and not what the bench measured).
    # Compared by name and version (``…:layer:<name>:<version>``): moto answers with its
    # own account in the ARN, AWS with the layer's publisher's.
    layers = sorted(settings.get("layers") or ())
    if (sorted(_layer(arn) for arn in layers)
            != sorted(_layer(layer["Arn"]) for layer in found.get("Layers") or ())):
        differ.append(f"Layers {[layer['Arn'] for layer in found.get('Layers') or ()]!r} "
                      f"(settings: {layers!r})")
    if differ:
        return fail(f"{stage.function} has {', '.join(differ)}: {stage.zappa('update')}")
    return ok(f"{stage.function}: {wanted['Runtime']} on {wanted['Architectures'][0]}, "
              f"{wanted['Handler']}, {wanted['Timeout']} s, {wanted['MemorySize']} MB")


def _layer(arn: str) -> str:
    return arn.partition(":layer:")[2]


def function_environment(stage: Stage, live: Live):
    """The function's real variables: the settings' ``aws_environment_variables``, no secret.

    Zappa's ``environment_variables`` live in the package, read after the handler's import;
    only ``aws_environment_variables`` reach Lambda's environment, and ``zappa update``
    keeps any variable it does not set (zappa/core.py ``update_lambda_configuration``).
    """
    wanted = stage.settings.get("aws_environment_variables") or {}
    found = (live.function.get("Environment") or {}).get("Variables") or {}
    secrets = sorted(set(found) & set(STORED_SECRETS))
    if secrets:
        exact = json.dumps({"Variables": wanted}, separators=(",", ":"))
        return fail(f"the function's variables hold {', '.join(secrets)} (its keys live in "
                    f"SSM): aws lambda update-function-configuration --function-name "
                    f"{stage.function} --environment '{exact}'")
    if INSTANTIATE not in wanted:
        return fail(f"{INSTANTIATE} is not in {stage.name}'s aws_environment_variables, so "
                    f"the app is built on the first request, not during init: add "
                    f'"{INSTANTIATE}": "1" there, commit, {stage.zappa("update")}')
    differ = sorted(name for name, value in wanted.items() if found.get(name) != value)
    if differ:
        return fail(f"{', '.join(differ)} not as in aws_environment_variables: "
                    f"{stage.zappa('update')}")
    extra = sorted(set(found) - set(wanted))
    if extra:
        return warn(f"variables the settings no longer set: {', '.join(extra)} "
                    f"(zappa update keeps them; remove by hand if unused)")
    return ok(f"{len(wanted)} variable(s) as in aws_environment_variables, {INSTANTIATE} set")


def dead_letters(stage: Stage, live: Live):
    """Failed asynchronous invocations go to the stage's dead-letter queue."""
    queue = live.output("DeadLetterQueueArn")
    live.function  # noqa: B018 - a missing function is said so once, above
    try:
        config = live.client("lambda").get_function_event_invoke_config(
            FunctionName=stage.function, Qualifier="$LATEST")
    except ClientError as error:
        if not not_found(error):
            raise
        return fail(f"no EventInvokeConfig on {stage.function}: failed runs and SES events "
                    f"would vanish after two retries: {reattach_command(stage)}")
    destination = (config.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
    if destination != queue:
        return fail(f"failed invocations go to {destination or 'nowhere'}, not {queue}: "
                    f"{reattach_command(stage)}")
    return ok(f"after {config.get('MaximumRetryAttempts', 2)} retries, failed invocations "
              f"go to {queue.rsplit(':', 1)[-1]}")
