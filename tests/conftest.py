"""Fixtures: one moto server over HTTP for the session, a fresh table per test.

DynamoDB runs on one of two engines: moto's server, or AWS's own DynamoDB Local (which
runs conditional writes truly concurrently and validates strictly). The store, job,
answer, concurrency and fault tests (``BOTH_ENGINES``) run on both; the rest on
``DYNAMODB_ENGINE`` (``moto`` unless set), which also narrows those modules to one.
SES is always moto's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import awscalls

ROOT = Path(__file__).resolve().parent.parent
# The account of the settings (README: the values a maintainer edits), which moto's
# server and the packaged-handler runner take as theirs: the tests hold the settings,
# the policies and the sample events together whatever account they name.
ACCOUNT = json.loads((ROOT / "zappa_settings.json").read_text())["prod"][
    "environment_variables"]["FEEDBACK_TOPIC_ARN"].split(":")[4]
os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT
EVENTS = Path(__file__).resolve().parent / "events"

# Every AWS call of the session, for tests/test_iam.py, which runs last and reads them.
awscalls.install(awscalls.SESSION.append)


def pytest_collection_modifyitems(items):
    """Run the tests marked ``last`` after all others: they read what the others did."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's server in its own process, as the sandbox runs it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tracker.motoserver", "--port", str(port)],
                            cwd=ROOT, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    from tracker.local import _wait_for

    _wait_for(f"{endpoint}/moto-api/data.json")
    yield endpoint
    proc.terminate()
    proc.wait(10)


BOTH_ENGINES = {"test_faults", "test_followups", "test_answers", "test_journey",
                "test_ses_events"}
ENGINES = ("moto", "local")


def pytest_generate_tests(metafunc):
    """Run the modules in BOTH_ENGINES once per DynamoDB engine."""
    chosen = os.environ.get("DYNAMODB_ENGINE")
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "engine" in metafunc.fixturenames and module in BOTH_ENGINES and not chosen:
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def dynamodb_local_endpoint():
    """DynamoDB Local in its own JVM for the session (``make dynamodb-local`` installs it)."""
    from soak import dynamodb_local

    try:
        proc, endpoint = dynamodb_local.start()
    except dynamodb_local.Unavailable as exc:
        pytest.skip(str(exc))
    yield endpoint
    dynamodb_local.stop(proc)


@pytest.fixture
def engine(request):
    """The DynamoDB engine of this test; boto3 points DynamoDB at it, SES stays on moto."""
    name = getattr(request, "param", None) or os.environ.get("DYNAMODB_ENGINE", "moto")
    assert name in ENGINES, f"DYNAMODB_ENGINE must be one of {ENGINES}"
    if name == "moto":
        yield name
        return
    from tracker import aws

    endpoint = request.getfixturevalue("dynamodb_local_endpoint")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    aws.reset()
    client = aws.client("dynamodb")
    for table in client.list_tables()["TableNames"]:  # a fresh, empty account per test
        client.delete_table(TableName=table)
    try:
        yield name
    finally:
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        aws.reset()


@pytest.fixture(scope="session", autouse=True)
def aws_environment(moto_endpoint):
    """Point every boto3 client at moto, with fake credentials."""
    saved = dict(os.environ)
    os.environ.update({
        "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-central-1"})
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "LOCAL_MODE", "AWS_LAMBDA_FUNCTION_NAME",
                 "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SESV2"):
        os.environ.pop(name, None)
    from tracker import aws

    aws.reset()
    yield
    os.environ.clear()
    os.environ.update(saved)


class Clock:
    """A settable clock for the web layer (the job takes ``now`` as a parameter)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock(datetime(2026, 9, 14, 8, 0, tzinfo=UTC))  # a Monday, noon in Baku


class WallClock:
    """The real clock, which a test may move on (``advance``) to let leases run out."""

    def __init__(self):
        self.offset = timedelta(0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def wall():
    """The clock the app's leases run on."""
    return WallClock()


@pytest.fixture
def mail_from() -> str:
    """The app's sender (a module may override it, e.g. with a stage's MAIL_FROM)."""
    return "tracker@example.com"


@pytest.fixture
def app(moto_endpoint, engine, clock, wall, mail_from):
    """A fresh app on an empty emulated AWS account."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    from app import create_app
    from tracker import aws, cli

    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret", "SEND_RATE": 0,
        "MAIL_FROM": mail_from, "BASE_URL": "https://tracker.example/dev",
        "CLOCK": clock, "LEASE_CLOCK": wall})
    with app.app_context():
        app.test_cli_runner().invoke(cli.bootstrap, catch_exceptions=False)
        aws.client("ses").verify_email_identity(EmailAddress=mail_from)
    return app


@pytest.fixture
def postman(app):
    """The job's wiring: store, mailer, rules."""
    return app.extensions["tracker"]


@pytest.fixture
def ses_client(app):
    """The very sesv2 client the app sends with (cached per process)."""
    return app.extensions["tracker"].mailer.client()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def outbox(moto_endpoint):
    """Read every email moto's SES accepted."""
    from tracker.local import sent_emails

    return lambda: sent_emails(moto_endpoint)


@pytest.fixture
def table(app):
    from tracker import aws

    return aws.table(app.config["TABLE_NAME"])


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())
