"""What every benchmark shares: result rows, moto's server and DynamoDB Local, AWS call
counting, timing."""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "eu-central-1"}
# Settings every measured app gets: no sandbox pages, a fixed key, no pacing.
APP_ENV = {"SECRET_KEY": "bench-secret", "MAIL_FROM": "tracker@example.com",
           "BASE_URL": "https://tracker.example/dev"}


@dataclass(frozen=True)
class Row:
    """One line of the table: a measure, its baseline, and the goal it is held to.

    ``goal`` reads ``<= 1.25``, ``>= 0.9``, ``== baseline`` or is empty (reported only).
    """

    section: str
    measure: str
    value: float
    unit: str = ""
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Whether the goal holds; None when there is none."""
        if not self.goal:
            return None
        op, _, target = self.goal.partition(" ")
        subject = self.value if target == "baseline" or self.ratio is None else self.ratio
        target_value = self.baseline if target == "baseline" else float(target)
        return {"<=": subject <= target_value, ">=": subject >= target_value,
                "==": subject == target_value}[op]

    def as_dict(self) -> dict:
        return dict(asdict(self), met=self.met)


def ratio_row(section: str, measure: str, value: float, baseline: float, unit: str,
              goal: str = "", note: str = "") -> Row:
    """A row whose goal holds the value against a baseline of the same run."""
    return Row(section, measure, value, unit, baseline, value / baseline if baseline else None,
               goal, note)


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``action``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(actions: dict[str, Callable[[], object]], repeats: int
                        ) -> dict[str, float]:
    """Median wall time of each action, run in turns so drift hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server (one request at a time, as the sandbox runs it) on a free port."""
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "tracker.motoserver", "--port", str(port)],
                            cwd=ROOT, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        from tracker.local import _wait_for

        _wait_for(f"{endpoint}/moto-api/data.json")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def reset_moto(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(
        f"{endpoint}/moto-api/reset", method="POST")).close()


@contextmanager
def dynamodb_local() -> Iterator[str]:
    """AWS's DynamoDB Local, started as `make soak` starts it; yields its endpoint."""
    from soak import dynamodb_local as emulator

    proc, endpoint = emulator.start()
    try:
        yield endpoint
    finally:
        emulator.stop(proc)


def delete_tables() -> None:
    """Delete every DynamoDB table: DynamoDB Local has no reset."""
    from tracker import aws

    client = aws.client("dynamodb")
    for page in client.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            client.delete_table(TableName=name)


def endpoints() -> dict[str, str]:
    """The endpoint variables this process's boto3 uses, for a child process."""
    return {name: os.environ[name] for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")
            if name in os.environ}


@contextmanager
def aws_pointed_at(endpoint: str, dynamodb: str | None = None) -> Iterator[None]:
    """Point boto3 at ``endpoint``, DynamoDB at ``dynamodb`` if given, then restore."""
    saved = dict(os.environ)
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint, **APP_ENV)
    os.environ.pop("AWS_ENDPOINT_URL_SESV2", None)
    if dynamodb:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb
    else:
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LOCAL_MODE", "AWS_LAMBDA_FUNCTION_NAME"):
        os.environ.pop(name, None)
    from tracker import aws

    aws.reset()
    try:
        yield
    finally:
        aws.reset()
        os.environ.clear()
        os.environ.update(saved)


class AwsCalls:
    """Count AWS API calls, their time and DynamoDB items read, from boto3's event hooks.

    Install it before any client is built: a botocore client copies the session's
    event hooks when it is created.
    """

    def __init__(self, session):
        self.calls: Counter[tuple[str, str]] = Counter()
        self.items_read = 0
        self.seconds = 0.0  # inside the client: serialising, signing, HTTP, parsing
        self.seconds_by_call: Counter[tuple[str, str]] = Counter()
        session.events.register("provide-client-params", self._before)
        session.events.register("after-call", self._after)
        session.events.register("after-call-error", self._stop_clock)

    def _before(self, model, context, **_):
        self.calls[(model.service_model.service_name, model.name)] += 1
        context["bench_started"] = time.perf_counter()

    def _stop_clock(self, context, model=None, **_):
        spent = time.perf_counter() - context.pop("bench_started", time.perf_counter())
        self.seconds += spent
        if model is not None:  # after-call-error (no answer at all) does not name it
            self.seconds_by_call[(model.service_model.service_name, model.name)] += spent

    def _after(self, model, parsed, context, **_):
        self._stop_clock(context, model)
        if model.service_model.service_name != "dynamodb" or not isinstance(parsed, dict):
            return
        # What DynamoDB bills a read for: items it examined (ScannedCount), not returned.
        if "ScannedCount" in parsed:
            self.items_read += parsed["ScannedCount"]
        elif model.name == "GetItem":
            self.items_read += 1  # billed whether or not the item exists
        elif model.name == "TransactGetItems":
            # The job's re-read before sending: each item billed, found or not.
            self.items_read += len(parsed.get("Responses") or [])
        elif "Responses" in parsed and isinstance(parsed["Responses"], dict):
            self.items_read += sum(len(items) for items in parsed["Responses"].values())

    def total(self, service: str, operations: set[str] | None = None) -> int:
        return sum(n for (svc, op), n in self.calls.items()
                   if svc == service and (operations is None or op in operations))

    def reset(self) -> None:
        self.calls.clear()
        self.items_read = 0
        self.seconds = 0.0
        self.seconds_by_call.clear()


@contextmanager
def counted_aws() -> Iterator[AwsCalls]:
    """A fresh boto3 session for the tracker, with a call counter on it."""
    from tracker import aws

    aws.reset()
    yield AwsCalls(aws.session())
    aws.reset()


DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                   "TransactWriteItems"}


def tracker_app(endpoint: str, *, reset: bool = True, **overrides):
    """A tracker app with its table and sender ready; on emptied engines unless told."""
    from app import create_app

    app = create_app(dict({"SEND_RATE": 0}, **overrides))
    quiet_logs()
    bootstrap(app, endpoint, reset=reset)
    return app


def bootstrap(app, endpoint: str, *, reset: bool = True) -> None:
    """Create the app's table and verify its sender, on emptied engines unless told.

    Every measurement starts from an empty account: no table but the app's own, no
    email in moto's SES, so what earlier rows stored cannot weigh on the next.
    """
    from tracker import aws, cli

    if reset:
        reset_moto(endpoint)
        delete_tables()
    with app.app_context():
        result = app.test_cli_runner().invoke(cli.bootstrap)
        if result.exit_code:
            raise RuntimeError(result.output)
        aws.client("ses").verify_email_identity(EmailAddress=app.config["MAIL_FROM"])


def quiet_logs() -> None:
    """Keep the tracker's log lines (formatting them is part of its cost) out of the table."""
    for handler in logging.getLogger("tracker").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is not _DEVNULL:
            handler.setStream(_DEVNULL)


_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
