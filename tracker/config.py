"""Settings: defaults, then the environment; the app factory applies overrides last."""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets

from tracker import aws

log = logging.getLogger(__name__)

REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "MAIL_FROM", "BASE_URL")
# Kept in SSM Parameter Store as SecureStrings under SECRETS_PATH (/esim-tracker/<stage>/);
# deploy/secret.py creates and rotates them.
STORED_SECRETS = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "ADDRESS_PEPPER")

DEFAULTS = {
    "TABLE_NAME": "esim-cancellations",
    "MAIL_FROM": "tracker@example.com",
    "BASE_URL": "http://127.0.0.1:5000",
    "LOCAL_MODE": False,
    # Sends per second across one job run; SES's sandbox allows 1. 0 means unpaced.
    "SEND_RATE": 1.0,
    # How long a claimed email is reserved for the run that claimed it: longer than the
    # function's timeout (zappa_settings.json), so no run outlives a lease it took.
    "LEASE_SECONDS": 300,
    # A run starts no email with less than this left: the worst case of one email's
    # calls under their botocore bounds (tracker/aws.py), plus a second for the rest.
    "RESERVE_MILLIS": aws.job_reserve_millis(),
    "MAX_SEND_ATTEMPTS": 5,
    "LINK_MAX_AGE_DAYS": 180,
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # Abuse limits (0 turns one off), counted in DynamoDB so they hold across instances.
    "SUBMISSIONS_PER_IP_PER_HOUR": 20,
    "SUBMISSIONS_PER_ADDRESS_PER_DAY": 5,
    "FRESH_LINKS_PER_REQUEST_PER_DAY": 3,
    "FRESH_LINKS_PER_MAILBOX_PER_DAY": 5,
    # Measured processing times (tracker.stats): a cell of fewer requests (or confirmed
    # terminations) shows nothing and leaves the first check at the configured default.
    "STATS_MIN_REQUESTS": 10,
    "STATS_CACHE_SECONDS": 300,
    # Cookies (the CSRF session) travel only over HTTPS, never to scripts, never
    # cross-site; the local sandbox serves plain HTTP, so it drops Secure (see check).
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "BABEL_DEFAULT_LOCALE": "en",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Baku",
}

_FLOATS = {"SEND_RATE"}
_INTS = {"LEASE_SECONDS", "RESERVE_MILLIS", "MAX_SEND_ATTEMPTS", "LINK_MAX_AGE_DAYS",
         "SUBMISSIONS_PER_IP_PER_HOUR", "SUBMISSIONS_PER_ADDRESS_PER_DAY",
         "FRESH_LINKS_PER_REQUEST_PER_DAY", "FRESH_LINKS_PER_MAILBOX_PER_DAY",
         "STATS_MIN_REQUESTS", "STATS_CACHE_SECONDS"}


def on_lambda() -> bool:
    """Tell whether this process runs inside AWS Lambda."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def from_environment(environ=os.environ) -> dict:
    """Read the contract's settings from the environment over the defaults."""
    config = dict(DEFAULTS)
    if not on_lambda():
        # On Lambda the entry handler adds them at the first invocation
        # (app.load_stored_secrets): the extension that serves them answers only then.
        environ = with_stored_secrets(environ)
    if environ.get("SES_CONFIGURATION_SET"):
        config["SES_CONFIGURATION_SET"] = environ["SES_CONFIGURATION_SET"]
    for name in ("SECRET_KEY", "TABLE_NAME", "MAIL_FROM", "BASE_URL", *_FLOATS, *_INTS):
        if environ.get(name):
            value = environ[name]
            config[name] = (float(value) if name in _FLOATS
                            else int(value) if name in _INTS else value)
    config["LOCAL_MODE"] = environ.get("LOCAL_MODE") == "1" and not on_lambda()
    config.update(key_ring_from_environment(environ))
    return config


def with_stored_secrets(environ=os.environ) -> dict:
    """The environment with the stage's stored secrets over it.

    The stored secrets win: on Lambda they are the only source.
    """
    return {**environ, **stored_secrets(environ.get("SECRETS_PATH", ""))}


def secret_settings(environ) -> dict:
    """``SECRET_KEY`` and the key ring, from (an environment with) the stored secrets."""
    found = key_ring_from_environment(environ)
    if environ.get("SECRET_KEY"):
        found["SECRET_KEY"] = environ["SECRET_KEY"]
    return found


# A ring value is comma-separated keys; deploy/secret.py marks each with its state
# (``<key>:next`` published, ``<key>:2026-12-04`` retired that day), which only it reads.
_RING_MARK = re.compile(r":(?:next|\d{4}-\d{2}-\d{2})$")


def ring_keys(value: str) -> list[str]:
    """The keys of a ring value, in order, without deploy.secret's marks."""
    return [_RING_MARK.sub("", key.strip()) for key in value.split(",") if key.strip()]


def key_ring_from_environment(environ=os.environ) -> dict:
    """``SECRET_KEY_FALLBACKS`` (comma-separated) and ``ADDRESS_PEPPER``, when set."""
    found = {"SECRET_KEY_FALLBACKS": ring_keys(environ.get("SECRET_KEY_FALLBACKS", ""))}
    if environ.get("ADDRESS_PEPPER"):
        found["ADDRESS_PEPPER"] = environ["ADDRESS_PEPPER"]
    return found


def signing_keys(config) -> list[str]:
    """The key ring, current key first: ``SECRET_KEY`` signs, every one verifies."""
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or []
    if isinstance(fallbacks, str):  # set by hand as in the environment
        fallbacks = ring_keys(fallbacks)
    return [config["SECRET_KEY"], *(k.strip() for k in fallbacks if k.strip())]


def address_peppers(config) -> list[str]:
    """The peppers that key suppressions, abuse counters and the stats' mailbox items:
    the first writes, every one is looked up (more than one only after a pepper leak,
    until the old one's items have expired; see deploy/secret.py).

    Unset, it is ``SECRET_KEY``: the key those items were made with before the pepper
    existed, so they stay valid. ``deploy.secret`` pins it before any rotation.
    """
    return ring_keys(config.get("ADDRESS_PEPPER") or "") or [config["SECRET_KEY"]]


def address_pepper(config) -> str:
    """The pepper that keys what is written now (the first of ``address_peppers``)."""
    return address_peppers(config)[0]


@functools.cache
def stored_secrets(path: str) -> dict[str, str]:
    """The secrets under an SSM path (``/esim-tracker/prod/``), read once per process.

    Empty without a path. A parameter that does not exist is left out (the key ring's
    fallbacks exist only after a rotation); any other failure raises, so a cold start
    without its secrets fails instead of serving with none. On Lambda they come through
    the Parameters and Secrets extension when the function has its layer (no botocore
    on the cold path), else, or when its answers are unclear, from SSM through boto3.
    """
    if not path:
        return {}
    prefix = path.rstrip("/") + "/"
    names = [prefix + name for name in STORED_SECRETS]
    found = _through_extension(names) if on_lambda() else None
    if found is None:
        from tracker import aws

        answer = aws.client("ssm").get_parameters(Names=names, WithDecryption=True)
        found = {p["Name"]: p["Value"] for p in answer["Parameters"]}
    return {name[len(prefix):]: value for name, value in found.items()}


def _through_extension(names: list[str]) -> dict[str, str] | None:
    """What the extension answers for ``names``; None to read SSM directly instead."""
    from tracker import parameters

    try:
        return parameters.read(names)
    except parameters.Unusable as exc:
        log.warning("secrets: the Parameters and Secrets extension failed (%s); "
                    "reading SSM directly", exc)
        return None


def talks_to_real_aws(environ=os.environ) -> bool:
    """Tell whether boto3 would reach AWS itself (no sandbox or moto endpoint set)."""
    return not any(environ.get(name) for name in (
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SESV2"))


class MissingSecretError(RuntimeError):
    """No SECRET_KEY where a random one would do harm."""


def check(config: dict) -> None:
    """Fail loudly without the settings that have no safe default; see the README."""
    if on_lambda() and not config.get("TESTING"):
        missing = [name for name in REQUIRED_IN_PRODUCTION
                   if not (config.get(name) if name == "SECRET_KEY" else os.environ.get(name))]
        if missing:
            raise MissingSecretError(
                f"missing settings on Lambda: {', '.join(missing)} (SECRET_KEY comes from "
                f"SSM under SECRETS_PATH={os.environ.get('SECRETS_PATH', '')!r}: run "
                f"`python -m deploy.secret <stage>` before deploying)")
    if config.get("LOCAL_MODE"):
        config["SESSION_COOKIE_SECURE"] = False  # the sandbox serves plain http://127.0.0.1
    if not config.get("SECRET_KEY"):
        # A random key against the real table would ignore every suppression (they are
        # keyed by it) and sign links that die with the process: refuse it there.
        if not (config.get("TESTING") or config.get("LOCAL_MODE")) and talks_to_real_aws():
            raise MissingSecretError(
                "SECRET_KEY is unset and this process would talk to real AWS: set "
                "SECRETS_PATH=/esim-tracker/<stage>/ to read the stage's keys from SSM, "
                "or point AWS_ENDPOINT_URL at a sandbox")
        # The local sandbox, the tests, moto: a throwaway key will do, but links signed
        # by it die with the process.
        log.warning("SECRET_KEY unset: using a random key for this process")
        config["SECRET_KEY"] = secrets.token_hex(32)
