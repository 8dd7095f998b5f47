"""Inject AWS faults at the boto3 client, through botocore's ``before-send`` event.

A handler registered on ``before-send.<service>.<Operation>`` may return an HTTP
response instead of sending the request, or raise a connection error: botocore then
parses, maps and retries exactly as it would for a real failure. Every fault made here
happens *before* the request reaches the server, so the server never acts on it; for
SES that means every injected failure is a rejection before acceptance.

Used by the tests (``tests/test_faults.py`` and friends) and by ``make soak``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
from collections import Counter
from collections.abc import Callable

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

_ids = itertools.count()


class _Body:
    """The ``raw`` an AWSResponse reads its body from."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def _response(request, status: int, headers: dict, body: dict) -> AWSResponse:
    return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))


def dynamodb_error(request, code: str = "ThrottlingException", status: int = 400):
    """A DynamoDB (JSON protocol) error answer."""
    return _response(request, status, {"x-amzn-RequestId": "injected"},
                     {"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                      "message": "injected fault"})


def ses_error(request, code: str = "TooManyRequestsException", status: int = 429, *,
              message: str = "injected fault"):
    """An SES v2 (REST-JSON protocol) error answer."""
    return _response(request, status, {"x-amzn-ErrorType": code,
                                       "x-amzn-RequestId": "injected"},
                     {"message": message})


def connection_error(request):
    """The request never got out: nothing reached the server."""
    raise EndpointConnectionError(endpoint_url=request.url)


def lost_answer(request):
    """The one fault that is not a rejection: SES accepts the email, its answer is lost.

    The known window for a duplicate; only ``make soak SOAK=--lost-answers=…`` uses it,
    to show the count of duplicates is real.
    """
    from botocore.httpsession import URLLib3Session

    URLLib3Session().send(request)
    return ses_error(request, "InternalFailure", 500)


def recipient(request) -> str | None:
    """The address an SES v2 SendEmail request is for (None for other calls)."""
    try:
        return json.loads(request.body)["Destination"]["ToAddresses"][0]
    except (TypeError, ValueError, KeyError, IndexError):
        return None


@contextlib.contextmanager
def injected(client, handler: Callable, event: str):
    """Run ``handler(request=…)`` before each matching call of ``client`` while inside.

    ``event`` is e.g. ``before-send.dynamodb`` or ``before-send.sesv2.SendEmail``.
    """
    unique = f"fault-{next(_ids)}"
    client.meta.events.register(event, handler, unique_id=unique)
    try:
        yield handler
    finally:
        client.meta.events.unregister(event, unique_id=unique)


class RandomFaults:
    """Fail a share of calls at random, with one of several faults; count what it did."""

    def __init__(self, rate: float, faults: dict[str, Callable], *, seed: int | None = None):
        self.rate = rate
        self.faults = faults
        self.random = random.Random(seed)
        self.counts = Counter()
        self._lock = threading.Lock()

    def __call__(self, request, **_):
        with self._lock:
            self.counts["calls"] += 1
            if self.random.random() >= self.rate:
                return None
            name = self.random.choice(sorted(self.faults))
            self.counts[name] += 1
        return self.faults[name](request)


DYNAMODB_FAULTS = {
    "throttling": dynamodb_error,
    "provisioned_throughput": lambda r: dynamodb_error(
        r, "ProvisionedThroughputExceededException"),
    "internal_error": lambda r: dynamodb_error(r, "InternalServerError", 500),
    "unavailable": lambda r: dynamodb_error(r, "ServiceUnavailable", 503),
    "connection": connection_error,
}

SES_FAULTS = {
    "throttling": ses_error,
    "internal_error": lambda r: ses_error(r, "InternalFailure", 500),
    "unavailable": lambda r: ses_error(r, "ServiceUnavailable", 503),
    "connection": connection_error,
}


@contextlib.contextmanager
def fast_backoff(factor: float = 0.01):
    """Shorten botocore's retry sleeps (same decisions, same attempts, less waiting)."""
    from botocore.retries import standard

    original = standard.ExponentialBackoff.delay_amount

    def shorter(self, context):
        return original(self, context) * factor

    standard.ExponentialBackoff.delay_amount = shorter
    try:
        yield
    finally:
        standard.ExponentialBackoff.delay_amount = original
