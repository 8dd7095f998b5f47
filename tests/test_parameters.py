"""Secrets through the Parameters and Secrets extension, and SSM when it can't say.

In this process, against the stand-in for the extension (deploy/secrets_extension.py)
backed by the session's moto server; the packaged function's use of it is in
tests/test_package.py.
"""

from __future__ import annotations

import logging
import urllib.request

import pytest

from deploy.lambda_runner import ROLE_CREDENTIALS
from deploy.secrets_extension import FakeExtension
from tests.conftest import free_port
from tracker import aws, config

PATH = "/esim-tracker/dev/"


@pytest.fixture
def ssm(moto_endpoint):
    """An empty emulated SSM holding the keys `python -m deploy.secret` creates."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    client = aws.client("ssm")
    for name, value in (("SECRET_KEY", "the-key"), ("ADDRESS_PEPPER", "the-pepper")):
        client.put_parameter(Name=PATH + name, Value=value, Type="SecureString")
    config.stored_secrets.cache_clear()
    yield client
    config.stored_secrets.cache_clear()


@pytest.fixture
def extension(moto_endpoint):
    """The stand-in, already in the INVOKE phase (its init refusal has a test of its own)."""
    fake = FakeExtension(endpoint=moto_endpoint, region="eu-central-1",
                         credentials=ROLE_CREDENTIALS, environ={}).start()
    fake.begin_invoke_phase()
    yield fake
    fake.stop()


def on_lambda(monkeypatch, port: int, token: str = ROLE_CREDENTIALS["AWS_SESSION_TOKEN"]):
    """This process as the function: Lambda's name and session token, the extension's port."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "esim-tracker-dev")
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(port))
    aws.reset()  # no SSM client built before the read


def ssm_client_built() -> bool:
    return aws._client.cache_info().currsize > 0  # every client comes from _client


def test_on_lambda_secrets_come_from_the_extension_and_absent_ones_are_left_out(
        ssm, extension, monkeypatch):
    on_lambda(monkeypatch, extension.port)
    assert config.stored_secrets(PATH) == {"SECRET_KEY": "the-key",
                                           "ADDRESS_PEPPER": "the-pepper"}
    assert not ssm_client_built()
    assert sorted(c.name for c in extension.calls) == [
        PATH + name for name in sorted(config.STORED_SECRETS)]


def test_a_rotated_ring_comes_through_the_extension_whole(ssm, extension, monkeypatch):
    ssm.put_parameter(Name=PATH + "SECRET_KEY_FALLBACKS", Value="old,older",
                      Type="SecureString")
    on_lambda(monkeypatch, extension.port)
    settings = config.secret_settings(config.with_stored_secrets({"SECRETS_PATH": PATH}))
    assert config.signing_keys(settings) == ["the-key", "old", "older"]
    assert config.address_pepper(settings) == "the-pepper"


@pytest.mark.parametrize("trouble", ["opaque errors", "wrong token", "init phase"])
def test_an_extension_answer_that_says_nothing_clear_falls_back_to_ssm(
        ssm, moto_endpoint, monkeypatch, caplog, trouble):
    fake = FakeExtension(endpoint=moto_endpoint, region="eu-central-1",
                         credentials=ROLE_CREDENTIALS, environ={},
                         opaque_errors=trouble == "opaque errors").start()
    if trouble != "init phase":
        fake.begin_invoke_phase()
    try:
        on_lambda(monkeypatch, fake.port,
                  token="someone-else" if trouble == "wrong token" else
                  ROLE_CREDENTIALS["AWS_SESSION_TOKEN"])
        with caplog.at_level(logging.WARNING, logger="tracker.config"):
            found = config.stored_secrets(PATH)
    finally:
        fake.stop()
    # The same answer as SSM's own, through boto3, and a line that says why.
    assert found == {"SECRET_KEY": "the-key", "ADDRESS_PEPPER": "the-pepper"}
    assert ssm_client_built()
    assert "reading SSM directly" in caplog.text and "the-key" not in caplog.text


def test_without_an_extension_listening_the_secrets_come_from_ssm(ssm, monkeypatch):
    on_lambda(monkeypatch, free_port())  # nothing listens there
    assert config.stored_secrets(PATH)["SECRET_KEY"] == "the-key"
    assert ssm_client_built()


def test_off_lambda_the_extension_is_never_asked(ssm, extension, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", ROLE_CREDENTIALS["AWS_SESSION_TOKEN"])
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(extension.port))
    assert config.stored_secrets(PATH)["SECRET_KEY"] == "the-key"
    assert extension.calls == []


def test_the_stand_in_caches_for_its_ttl_and_refuses_during_init(moto_endpoint, ssm):
    fake = FakeExtension(endpoint=moto_endpoint, region="eu-central-1",
                         credentials=ROLE_CREDENTIALS,
                         environ={"SSM_PARAMETER_STORE_TTL": "300"}).start()
    try:
        path = f"/systemsmanager/parameters/get?name={PATH}SECRET_KEY&withDecryption=true"
        token = ROLE_CREDENTIALS["AWS_SESSION_TOKEN"]
        assert fake.answer(path, token)[0] == 400  # INIT: refused, SSM never asked
        fake.begin_invoke_phase()
        assert fake.answer(path, token)[0] == 200
        assert fake.answer(path, token)[0] == 200
        assert fake.answer(path, "wrong")[0] == 401
        assert fake.ssm_calls == 1
    finally:
        fake.stop()
