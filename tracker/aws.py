"""boto3 clients, built lazily once per process and cached, and the bounds of their calls.

boto3 honours AWS_ENDPOINT_URL by itself, so the local sandbox and the tests reach
moto's server with no code here knowing about it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

# botocore's standard retry mode waits before retry i (0-based) at most
# min(2**i, 20) seconds (the base is 1 s for throttling; botocore before the 2026 retry
# rules used it for every error), and honours a service's x-amz-retry-after hint up to
# 5 s beyond that (botocore/retries/standard.py ExponentialBackoff; the cross-SDK
# change: https://github.com/aws/aws-sdk-go-v2/pull/3400).
MAX_BACKOFF, RETRY_AFTER_EXTRA = 20, 5


# DynamoDB's answers that mean "not now" (botocore retries them, and 5xx, itself): worth
# another try once botocore has given up. Any other 4xx (the table is gone, the role may
# not, the request is malformed) answers the same however often it is asked.
TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "LimitExceededException", "TransactionInProgressException"})


def transient(error: BaseException | None) -> bool:
    """Tell whether a failed AWS call may pass if made again later: a timeout, a lost
    connection, a 5xx or throttling, but not a refusal."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return True  # no answer at all
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return status >= 500 or response.get("Error", {}).get("Code") in TRANSIENT_CODES


@dataclasses.dataclass(frozen=True)
class Bounds:
    """How long one call may take: per attempt, and how many attempts in all.

    ``attempts`` counts the first try (botocore's ``total_max_attempts``; its
    ``max_attempts`` counts only retries: 1 would mean two sends).
    """

    connect: float
    read: float
    attempts: int

    def worst_seconds(self) -> float:
        """The longest the call can take: every attempt timing out, every wait at most."""
        waits = sum(min(2 ** i, MAX_BACKOFF) + RETRY_AFTER_EXTRA
                    for i in range(self.attempts - 1))
        return self.attempts * (self.connect + self.read) + waits


# DynamoDB answers in milliseconds: a 1 s connect and a 2 s read timeout are generous
# (AWS's advice for latency-aware DynamoDB clients: short timeouts, few retries:
# https://aws.amazon.com/blogs/database/tuning-aws-java-sdk-http-request-settings-for-latency-aware-amazon-dynamodb-applications/),
# and 4 attempts are botocore's own default for DynamoDB (_SERVICE_MAX_ATTEMPTS). Standard
# mode backs off on throttling, 5xx and connection errors, so DynamoDB throttling slows a
# run down instead of failing it.
DYNAMODB = Bounds(connect=1, read=2, attempts=4)
# SES sends are tried once: a retry whose first answer was lost would be a second email.
SEND = Bounds(connect=2, read=8, attempts=1)
# Everything else (SSM at a cold start, SES identity set-up, the maintainers' tools).
OTHER = Bounds(connect=5, read=10, attempts=8)
BY_SERVICE = {"dynamodb": DYNAMODB, "sesv2": dataclasses.replace(SEND, attempts=8)}

# What one email of the follow-up job calls, in the worst case, once it has started:
# a page of the due index (Query, once per 100 emails), the claim, the re-read just
# before sending (TransactGetItems: still ours, address not suppressed), the send, the
# record. The job starts no email with less than this left (config.RESERVE_MILLIS).
JOB_ITEM_CALLS = (DYNAMODB, DYNAMODB, DYNAMODB, SEND, DYNAMODB)


def job_item_worst_seconds() -> float:
    """The longest one email of the job can take, from the bounds above."""
    return sum(bounds.worst_seconds() for bounds in JOB_ITEM_CALLS)


def job_reserve_millis() -> int:
    """What a run must have left to start one more email: its worst case, and a second."""
    return math.ceil(job_item_worst_seconds() * 1000) + 1000


def bounds_for(service: str, max_attempts: int | None = None) -> Bounds:
    """The bounds of ``service``'s calls; ``max_attempts`` overrides the attempts."""
    bounds = BY_SERVICE.get(service, OTHER)
    return dataclasses.replace(bounds, attempts=max_attempts) if max_attempts else bounds


@functools.cache
def session():
    """One boto3 session per process (imported late: boto3 costs a cold start)."""
    import boto3

    return boto3.session.Session()


@functools.cache
def config(bounds: Bounds):
    """botocore's Config for calls held to ``bounds``."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": bounds.attempts},
                  connect_timeout=bounds.connect, read_timeout=bounds.read)


def config_for(service: str, max_attempts: int | None = None):
    """botocore's Config for ``service`` (tests and the soak build clients of their own)."""
    return config(bounds_for(service, max_attempts))


@functools.cache
def table(name: str):
    """The DynamoDB Table resource for ``name``."""
    return session().resource("dynamodb", config=config(DYNAMODB)).Table(name)


def client(service: str, *, max_attempts: int | None = None):
    """A low-level client for ``service``; ``max_attempts`` counts the first try."""
    return _client(service, bounds_for(service, max_attempts))


@functools.cache
def _client(service: str, bounds: Bounds):
    return session().client(service, config=config(bounds))


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
    _client.cache_clear()
    config.cache_clear()
