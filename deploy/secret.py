"""Give a deployed stage its SECRET_KEY, once, in the Lambda function's own settings.

    python -m deploy.secret prod

The key signs CSRF tokens and every link in the emails, so it lives neither in the repo
nor in the zip: it is an environment variable of the function, encrypted at rest by
Lambda, which ``zappa update`` keeps because zappa_settings.json doesn't name it. An
existing key is never replaced (that would kill every link already emailed) and the
key is never printed.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from deploy.lambda_runner import function_name, stage_settings


def ensure_secret_key(lambda_client, name: str) -> bool:
    """Add a random SECRET_KEY to the function's variables unless it has one."""
    config = lambda_client.get_function_configuration(FunctionName=name)
    variables = dict((config.get("Environment") or {}).get("Variables") or {})
    if variables.get("SECRET_KEY"):
        return False
    variables["SECRET_KEY"] = secrets.token_urlsafe(48)
    lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": variables})
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    stage = parser.parse_args(argv).stage
    import boto3

    client = boto3.client("lambda", region_name=stage_settings(stage)["aws_region"])
    name = function_name(stage)
    added = ensure_secret_key(client, name)
    print(f"{name}: SECRET_KEY {'set' if added else 'already set, left as it is'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
