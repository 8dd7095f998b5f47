"""boto3 clients, built lazily once per process and cached.

boto3 honours AWS_ENDPOINT_URL by itself, so the local sandbox and the tests reach
moto's server with no code here knowing about it.
"""

from __future__ import annotations

import functools

# Standard retry mode backs off on throttling, 5xx and connection errors; DynamoDB
# throttling then slows a run down instead of failing it. ``total_max_attempts`` counts
# the first try (botocore's ``max_attempts`` counts only retries: 1 would mean two
# sends, and a retried SES send after a lost answer is a duplicate email).
_RETRIES = {"mode": "standard", "total_max_attempts": 8}


@functools.cache
def session():
    """One boto3 session per process (imported late: boto3 costs a cold start)."""
    import boto3

    return boto3.session.Session()


@functools.cache
def _config(max_attempts: int = _RETRIES["total_max_attempts"]):
    from botocore.config import Config

    retries = dict(_RETRIES, total_max_attempts=max_attempts)
    return Config(retries=retries, connect_timeout=5, read_timeout=10)


@functools.cache
def table(name: str):
    """The DynamoDB Table resource for ``name``."""
    return session().resource("dynamodb", config=_config()).Table(name)


@functools.cache
def client(service: str, *, max_attempts: int = _RETRIES["total_max_attempts"]):
    """A low-level client for ``service``; ``max_attempts`` counts the first try."""
    return session().client(service, config=_config(max_attempts))


class _BotocoreErrors:
    """botocore's exception classes, looked up when an ``except`` clause needs one.

    ``except errors.ClientError`` is evaluated only when an exception is on its way, so
    importing the store or the mailer costs no botocore (cold start).
    """

    def __getattr__(self, name: str) -> type[Exception]:
        from botocore import exceptions

        return getattr(exceptions, name)


errors = _BotocoreErrors()


def reset() -> None:
    """Forget cached clients (tests that change the endpoint)."""
    session.cache_clear()
    table.cache_clear()
    client.cache_clear()
    _config.cache_clear()
