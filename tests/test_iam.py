"""The role's policy against what the function really calls, both ways, by IAM's rules.

Every AWS call of the session is recorded (tests/conftest.py, tests/awscalls.py); this
module runs after all other tests (``last``), so it judges every call the suite made
the function make, plus its own tour, which on its own reaches every call the function
has (so the module also holds when run alone). tests/iam.py maps each call to the IAM
requests AWS authorizes it as and asks ``@cloud-copilot/iam-simulate`` for IAM's
decision: a call the policy does not allow fails, and so does a grant no call needs.
"""

from __future__ import annotations

import importlib
import json
import re
import urllib.request
from datetime import UTC, datetime

import pytest

from deploy import secret
from tests import awscalls, iam
from tests.conftest import load_event
from tests.helpers import link, local_path, submit
from tracker import aws, config, store

pytestmark = pytest.mark.last

STAGES = ("dev", "prod")


@pytest.fixture(params=STAGES)
def stage(request) -> iam.Stage:
    return iam.stage(request.param)


def tour(on: iam.Stage, moto_endpoint: str, monkeypatch) -> None:
    """Everything the function does, configured as the stage: cold start (its secrets
    from SSM), the form, the figures, the job, a deletion, SES feedback."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    # The maintainer's set-up (not the function's calls): table, secrets, SES.
    store.create_table(aws.client("dynamodb"), on.table)
    secret.ensure(aws.client("ssm"), on.secrets_path)
    aws.client("ses").verify_email_identity(EmailAddress=on.mail_from)
    aws.client("sesv2").create_configuration_set(ConfigurationSetName=on.configuration_set)
    for name, value in {"TABLE_NAME": on.table, "MAIL_FROM": on.mail_from,
                        "SECRETS_PATH": on.secrets_path,
                        "SES_CONFIGURATION_SET": on.configuration_set}.items():
        monkeypatch.setenv(name, value)
    config.stored_secrets.cache_clear()
    from app import create_app
    from tracker.local import sent_emails

    app = create_app({"TESTING": True, "SEND_RATE": 0, "BASE_URL": "https://tracker.example/dev",
                      "CLOCK": lambda: datetime(2026, 9, 14, 8, tzinfo=UTC)})
    config.stored_secrets.cache_clear()
    monkeypatch.setattr(importlib.import_module("app"), "app", app)
    client = app.test_client()
    assert submit(client, requested_on="2026-09-14").status_code == 303
    assert client.get("/stats").status_code == 200
    with app.app_context():
        from tracker import followups

        sent = followups.run(app.extensions["tracker"],
                             now=datetime(2026, 9, 18, 5, tzinfo=UTC))
    assert sent["sent"] == 1
    receipt, check = sent_emails(moto_endpoint)
    manage = local_path(link(receipt, "/manage/")).split("?")[0]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get(manage).get_data(as_text=True)).group(1)
    assert client.post(f"{manage}/delete", data={"csrf_token": token}).status_code == 303
    from handlers import ses_events

    assert ses_events.handle(load_event("sns_bounce_permanent.json"), None)["suppressed"] == 1


@pytest.fixture(scope="module")
def function_calls(moto_endpoint) -> list[dict]:
    """The function's calls: the whole session's so far, and the tour's for each stage."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in STAGES:
            tour(iam.stage(name), moto_endpoint, monkeypatch)
    return iam.the_functions(awscalls.SESSION)


def requests_on(on: iam.Stage, calls: list[dict]) -> list[dict]:
    return iam.unique([r for c in calls for r in iam.requests(c, on)] + iam.extra_requests(on))


def test_the_recorder_sees_the_function_and_tells_it_from_set_up(function_calls):
    operations = {(c["prefix"], c["operation"]) for c in function_calls}
    assert {("dynamodb", "BatchGetItem"), ("dynamodb", "TransactWriteItems"),
            ("dynamodb", "Query"), ("ses", "SendEmail"), ("ssm", "GetParameters")} <= operations
    # The maintainer's set-up (bootstrap, deploy.secret) and the tests' own are not its.
    set_up = {("dynamodb", "CreateTable"), ("ssm", "PutParameter"),
              ("ses", "VerifyEmailIdentity"), ("ses", "CreateConfigurationSet")}
    assert set_up <= {(c["prefix"], c["operation"]) for c in awscalls.SESSION}
    assert not operations & set_up


def test_every_call_the_function_makes_is_allowed_by_its_stages_policy(stage, function_calls):
    found = requests_on(stage, function_calls)
    refused = iam.denied(stage, found, stage.policy())
    assert not refused, "the role may not make these calls:\n" + "\n".join(
        json.dumps(r) for r in refused)


def test_every_grant_of_the_policy_is_needed_by_some_call(stage, function_calls):
    found = requests_on(stage, function_calls)
    assert iam.unused(stage, found, stage.policy()) == []


def test_the_evaluator_refuses_what_the_policy_grants_no_one(stage):
    other = iam.stage("prod" if stage.name == "dev" else "dev")
    table = stage.arn("dynamodb", f"table/{stage.table}")
    strangers = [
        {"action": "dynamodb:Scan", "resource": table, "context": {}},
        {"action": "dynamodb:DeleteTable", "resource": table, "context": {}},
        {"action": "dynamodb:GetItem", "resource": other.arn("dynamodb", f"table/{other.table}"),
         "context": {}},
        {"action": "ses:SendEmail", "resource": stage.arn("ses", "identity/example.org"),
         "context": {"ses:FromAddress": "someone-else@example.org"}},
        {"action": "ssm:GetParameters",
         "resource": other.arn("ssm", f"parameter{other.secrets_path}SECRET_KEY"), "context": {}},
        iam.decrypt_through_ssm(other.arn("ssm", f"parameter{other.secrets_path}SECRET_KEY"),
                                stage),
    ]
    assert iam.denied(stage, strangers, stage.policy()) == strangers
    # And a grant nothing calls is reported as such.
    assert iam.unused(stage, [], stage.policy())
