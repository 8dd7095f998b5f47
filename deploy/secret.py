"""Create, adopt and rotate a stage's secrets in SSM Parameter Store, before any deploy.

    python -m deploy.secret prod            # once, before the first `zappa deploy prod`
    python -m deploy.secret prod --rotate   # a new SECRET_KEY; the old one still verifies

The parameters are SecureStrings under ``/esim-tracker/<stage>/`` (the ``SECRETS_PATH``
of zappa_settings.json), encrypted with the account's AWS-managed ``aws/ssm`` key:

- ``SECRET_KEY`` signs CSRF tokens and every link in the emails;
- ``SECRET_KEY_FALLBACKS``: previous keys, comma-separated, newest first, that still
  verify (created by the first rotation);
- ``ADDRESS_PEPPER`` keys suppressions and abuse counters; never rotated.

An existing value is never replaced except by ``--rotate``, and no value is printed. A
function deployed before the keys moved to SSM kept its key in a plain environment
variable: that key is adopted as SECRET_KEY and as ADDRESS_PEPPER, so the links already
emailed and the suppressions already recorded stay valid.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from deploy.lambda_runner import function_name, stage_settings

# Unsubscribe links never expire, so old keys are kept a long while; five rotations.
MAX_FALLBACKS = 5


def secrets_path(stage: str) -> str:
    """The stage's SSM path, as the function reads it (its SECRETS_PATH)."""
    return stage_settings(stage)["environment_variables"]["SECRETS_PATH"]


def new_key() -> str:
    """A fresh random key (64 URL-safe characters; no comma, the fallbacks' separator)."""
    return secrets.token_urlsafe(48)


def _put(ssm, name: str, value: str, *, overwrite: bool = False) -> bool:
    """Store a SecureString; False when it exists and ``overwrite`` is off."""
    try:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=overwrite,
                          Description="esim-tracker secret; see deploy/secret.py")
    except ssm.exceptions.ParameterAlreadyExists:
        return False
    return True


def legacy_key(lambda_client, name: str) -> str | None:
    """The SECRET_KEY an older deploy put in the function's variables, if any."""
    try:
        config = lambda_client.get_function_configuration(FunctionName=name)
    except lambda_client.exceptions.ResourceNotFoundException:
        return None  # the first deploy has not happened yet
    return ((config.get("Environment") or {}).get("Variables") or {}).get("SECRET_KEY")


def ensure(ssm, path: str, *, adopt: str | None = None) -> dict[str, bool]:
    """Create SECRET_KEY and ADDRESS_PEPPER unless they exist; which were created."""
    prefix = path.rstrip("/") + "/"
    key = adopt or new_key()
    return {"SECRET_KEY": _put(ssm, prefix + "SECRET_KEY", key),
            "ADDRESS_PEPPER": _put(ssm, prefix + "ADDRESS_PEPPER", adopt or new_key())}


def rotate(ssm, path: str) -> int:
    """A new SECRET_KEY; the old one goes first in SECRET_KEY_FALLBACKS. Their count."""
    prefix = path.rstrip("/") + "/"
    current = ssm.get_parameter(Name=prefix + "SECRET_KEY", WithDecryption=True)
    try:
        previous = ssm.get_parameter(Name=prefix + "SECRET_KEY_FALLBACKS",
                                     WithDecryption=True)["Parameter"]["Value"].split(",")
    except ssm.exceptions.ParameterNotFound:
        previous = []
    fallbacks = [current["Parameter"]["Value"], *filter(None, previous)][:MAX_FALLBACKS]
    # Fallbacks first: a cold start between the two writes then verifies with both keys.
    _put(ssm, prefix + "SECRET_KEY_FALLBACKS", ",".join(fallbacks), overwrite=True)
    _put(ssm, prefix + "SECRET_KEY", new_key(), overwrite=True)
    return len(fallbacks)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="a stage of zappa_settings.json, e.g. prod")
    parser.add_argument("--rotate", action="store_true",
                        help="replace SECRET_KEY, keeping the old one as a fallback")
    args = parser.parse_args(argv)
    import boto3

    region = stage_settings(args.stage)["aws_region"]
    ssm, path = boto3.client("ssm", region_name=region), secrets_path(args.stage)
    if args.rotate:
        kept = rotate(ssm, path)
        print(f"{path}SECRET_KEY rotated; {kept} previous key(s) still verify. Run "
              f"`zappa update {args.stage}` so every container reads the new key.",
              file=sys.stderr)
        return
    adopt = legacy_key(boto3.client("lambda", region_name=region), function_name(args.stage))
    for name, created in ensure(ssm, path, adopt=adopt).items():
        state = ("created" + (" from the function's old variable" if adopt else "")
                 if created else "already set, left as it is")
        print(f"{path}{name}: {state}", file=sys.stderr)


if __name__ == "__main__":
    main()
