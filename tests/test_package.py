"""The Lambda package as Zappa builds it and as Lambda runs it, offline.

`make package STAGE=dev` builds dist/dev.zip (reused while newer than its sources); each
test unzips it and calls Zappa's ``handler.lambda_handler`` in a fresh Python holding
only the package and the runtime's boto3, against the session's moto server, with the
events API Gateway, EventBridge (through Zappa's rule) and SNS deliver.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import subprocess
import urllib.request
import zipfile
from datetime import UTC, datetime, time, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po

from deploy import lambda_runner, prebuild
from tests.conftest import ROOT, load_event
from tests.helpers import links_in

pytestmark = pytest.mark.package

STAGE = "dev"
SETTINGS = lambda_runner.stage_settings(STAGE)
ENV = SETTINGS["environment_variables"]
FUNCTION = lambda_runner.function_name(STAGE)
ADDRESS = "traveller@example.com"  # the address the sample bounce is about
BAKU = ZoneInfo("Asia/Baku")
# What the zip must hold of this repository's top level, and nothing else of it.
RUNTIME_FILES = {"app.py", "handlers", "tracker", "operators", "templates", "static",
                 "translations"}


@pytest.fixture(scope="module")
def package() -> Path:
    return lambda_runner.ensure_package(STAGE)


@pytest.fixture(scope="module")
def unpacked(package, tmp_path_factory) -> Path:
    return lambda_runner.unpack(package, tmp_path_factory.mktemp("task"))


@pytest.fixture
def lambda_aws(moto_endpoint):
    """An empty emulated account holding what `flask --app app bootstrap` creates."""
    urllib.request.urlopen(urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    from tracker import aws, store

    store.create_table(aws.client("dynamodb"), ENV["TABLE_NAME"])
    aws.client("ses").verify_email_identity(EmailAddress=ENV["MAIL_FROM"])
    return aws.table(ENV["TABLE_NAME"])


def invoke(unpacked: Path, moto_endpoint: str, *events: dict,
           secret: str | None = "package-test-secret") -> lambda_runner.Run:
    """Invoke the package with events in one fresh process (one container)."""
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    if secret:
        env["SECRET_KEY"] = secret
    return lambda_runner.invoke(
        unpacked, list(events), function_name=FUNCTION, env=env,
        region=SETTINGS["aws_region"], memory_mb=SETTINGS["memory_size"],
        timeout_seconds=SETTINGS["timeout_seconds"])


def values(run: lambda_runner.Run) -> list:
    for result in run.results:
        assert result.error is None, f"{result.error}\n{run.log}"
    return [result.value for result in run.results]


@pytest.fixture
def run_lambda(unpacked, moto_endpoint, lambda_aws):
    """Invoke the package with events, in one fresh process; return what it answered."""
    return lambda *events: values(invoke(unpacked, moto_endpoint, *events))


LANGUAGES = ("en", "zh", "az", "ru")


@pytest.fixture(scope="module")
def pages(unpacked, moto_endpoint) -> lambda_runner.Run:
    """One container's answers to GET / in each language (the form reads no table)."""
    return invoke(unpacked, moto_endpoint, *(page(lang) for lang in LANGUAGES))


def page(lang: str | None = None) -> dict:
    """API Gateway's event for GET / (of the form, in a language)."""
    event = load_event("apigw_get_root.json")
    if lang:
        event["queryStringParameters"] = {"lang": lang}
        event["multiValueQueryStringParameters"] = {"lang": [lang]}
    return event


def form_post(get_response: dict, lang: str, requested_on: str) -> dict:
    """API Gateway's event for the form's POST, with the GET's cookie and hidden fields."""
    html = get_response["body"]
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="hidden"[^>]*value="([^"]*)"',
                             html))
    assert "csrf_token" in fields
    fields.update(email=ADDRESS, operator="azercell", phone="+994 50 123 45 67",
                  channel="call", requested_on=requested_on, timezone="Asia/Baku",
                  consent="y")
    cookie = SimpleCookie(get_response["multiValueHeaders"]["Set-Cookie"][0])
    event = load_event("apigw_post_form.json")
    # binary_support: API Gateway base64-encodes every body it passes to Zappa's function.
    event["body"] = base64.b64encode(urlencode(fields).encode()).decode()
    event["queryStringParameters"] = {"lang": lang}
    event["multiValueQueryStringParameters"] = {"lang": [lang]}
    event["headers"]["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in cookie.items())
    event["multiValueHeaders"]["Cookie"] = [event["headers"]["Cookie"]]
    return event


def submitted_form(pages: lambda_runner.Run, lang: str) -> dict:
    """The POST a browser sends after the GET of the form in ``lang``."""
    got = values(pages)[LANGUAGES.index(lang)]
    today = datetime.now(BAKU).date()
    # Asked three weeks ago: the 3-working-day window has passed even across Novruz.
    return form_post(got, lang, (today - timedelta(days=21)).isoformat())


def schedule_at(moment: datetime) -> dict:
    """The event Zappa's EventBridge rule delivers for the follow-up job at ``moment``."""
    event = load_event("zappa_scheduled_followup.json")
    event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["id"] = f"local-{moment:%Y%m%d%H%M}"
    return event


def tomorrow_morning_in_baku() -> datetime:
    day = datetime.now(BAKU).date() + timedelta(days=1)
    return datetime.combine(day, time(10, 0), BAKU).astimezone(UTC)


def requests_in(table) -> list[dict]:
    return [i for i in table.scan()["Items"] if i["pk"].startswith("REQ#")]


def translated(lang: str, text: str) -> str:
    with (ROOT / f"translations/{lang}/LC_MESSAGES/messages.po").open("rb") as po:
        return read_po(po)[text].string or text


def test_package_is_lean_and_holds_only_what_lambda_loads(package):
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
    assert package.stat().st_size < 5_000_000
    tops = {name.split("/")[0] for name in names}
    for entry in (p.name for p in ROOT.iterdir()):
        assert (entry in tops) == (entry in RUNTIME_FILES), (
            f"{entry}: list it in zappa_settings.json's exclude, or in RUNTIME_FILES")
    assert {"handler.py", "zappa_settings.py"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "dns", "pytest", "moto"}
    assert not [n for n in names if n.endswith(".pyc") or "/tests/" in n]
    assert {Path(n).stem for n in names
            if n.startswith("babel/locale-data/") and n.endswith(".dat")} \
        == prebuild.BABEL_LOCALES
    for lang in ("en", "zh", "az", "ru"):
        assert f"translations/{lang}/LC_MESSAGES/messages.mo" in names


def test_packaged_app_serves_the_form_in_every_language_behind_api_gateway(pages):
    for lang, response in zip(LANGUAGES, values(pages), strict=True):
        assert response["statusCode"] == 200
        html = response["body"]
        assert f'<html lang="{lang}">' in html
        assert translated(lang, "Track your eSIM cancellation") in html  # its .mo is in
        # API Gateway's stage reaches Flask: links carry /dev.
        assert f'action="/dev/?lang={lang}"' in html
        assert 'src="/dev/static/timezone.js"' in html


def test_packaged_app_takes_the_form_posted_with_the_cookie_and_token_of_its_get(
        pages, run_lambda, outbox, lambda_aws):
    post = submitted_form(pages, "zh")
    [response] = run_lambda(post)
    assert response["statusCode"] == 303
    assert response["headers"]["Location"].startswith("/dev/")
    [receipt] = outbox()
    assert receipt["to"] == ADDRESS
    [item] = requests_in(lambda_aws)
    assert item["lang"] == "zh" and item["status"] == "open"
    assert item["next_kind"] == "check"  # the receipt is out; the check is scheduled


def test_zappa_schedule_event_runs_the_followup_job_when_the_check_is_due(
        pages, run_lambda, outbox):
    at = schedule_at(tomorrow_morning_in_baku())
    posted, first, replayed = run_lambda(submitted_form(pages, "az"), at, at)
    assert posted["statusCode"] == 303
    assert first["sent"] == 1 and replayed["sent"] == 0
    receipt, check = outbox()
    assert check["to"] == ADDRESS and check["subject"] != receipt["subject"]
    links = links_in(check["text"])
    assert links and all(url.startswith(ENV["BASE_URL"]) for url in links)


def test_sns_bounce_reaches_the_ses_handler_and_stops_the_request(
        pages, run_lambda, outbox, lambda_aws):
    bounce = copy.deepcopy(load_event("sns_bounce_permanent.json"))
    # Zappa routes an SNS record by its topic: the one zappa_settings.json subscribes to.
    [topic] = [e["event_source"]["arn"] for e in SETTINGS["events"] if "event_source" in e]
    bounce["Records"][0]["Sns"]["TopicArn"] = topic
    # SES's notification names the sender it is about: this stage's own MAIL_FROM.
    message = json.loads(bounce["Records"][0]["Sns"]["Message"])
    message["mail"]["source"] = ENV["MAIL_FROM"]
    bounce["Records"][0]["Sns"]["Message"] = json.dumps(message)
    posted, handled, job = run_lambda(submitted_form(pages, "ru"), bounce,
                                      schedule_at(tomorrow_morning_in_baku()))
    assert posted["statusCode"] == 303
    assert handled["suppressed"] == 1 and handled["stopped"] == 1
    assert job["sent"] == 0
    assert len(outbox()) == 1  # the receipt, and nothing after the bounce
    [request] = requests_in(lambda_aws)
    assert request["status"] in ("failed", "stopped") and "next_kind" not in request


def test_packaged_process_loads_nothing_from_outside_the_package_and_runtime(pages):
    assert values(pages)[0]["statusCode"] == 200
    assert pages.origins["flask"] == "package" and pages.origins["app"] == "package"
    assert pages.origins["boto3"] == "runtime"
    assert "elsewhere" not in pages.origins.values(), pages.origins


def test_packaged_app_refuses_to_start_on_lambda_without_its_secret(unpacked, moto_endpoint):
    run = invoke(unpacked, moto_endpoint, page(), secret=None)
    [result] = run.results
    assert result.error and "SECRET_KEY" in result.error


# The settings themselves, loaded by Zappa offline: no AWS call may happen here.

OFFLINE = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "AWS_ACCESS_KEY_ID": "offline",
           "AWS_SECRET_ACCESS_KEY": "offline",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # the discard port: any call fails


@pytest.fixture(scope="module", params=["dev", "prod"])
def zappa_stage(request):
    """Zappa's own view of a stage, as `zappa deploy` loads it (no network)."""
    from zappa.cli import ZappaCLI

    cli = ZappaCLI()
    cli.api_stage = request.param
    cli.load_settings(str(ROOT / "zappa_settings.json"))
    return cli


def test_zappa_template_of_the_stack_builds_offline(tmp_path):
    output = tmp_path / "template.json"
    done = subprocess.run(
        [str(ROOT / ".venv/bin/zappa"), "template", "prod", "--json", "-o", str(output),
         "--lambda-arn", "arn:aws:lambda:eu-central-1:123456789012:function:esim-tracker-prod",
         "--role-arn", "arn:aws:iam::123456789012:role/esim-tracker-prod-ZappaLambdaExecutionRole"],
        cwd=ROOT, env=OFFLINE, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resources = json.loads(output.read_text())["Resources"]
    methods = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"]
    assert methods and all(m["Properties"]["Integration"]["Type"] == "AWS_PROXY"
                           for m in methods)


def test_zappa_routes_the_schedule_and_sns_events_to_the_contract_handlers(zappa_stage):
    cli, stage = zappa_stage, zappa_stage.api_stage
    [job] = [e for e in cli.stage_config["events"] if "expression" in e]
    assert (job["function"], job["expression"]) == ("handlers.followup.run", "rate(15 minutes)")
    rule = cli.zappa.get_scheduled_event_name(job, job["function"], cli.lambda_name)
    assert rule == f"esim-tracker-{stage}-handlers.followup.run"
    # Zappa's handler finds the function in the rule's name after its last '-'.
    assert rule.split("-")[-1] == "handlers.followup.run"
    if stage == "dev":  # the sample is the dev rule's event, as EventBridge sends it
        sample = load_event("zappa_scheduled_followup.json")
        assert sample["resources"][0].split("/")[-1] == rule
    mapping = re.search(r"^AWS_EVENT_MAPPING=(.*)$", cli.get_zappa_settings_string(), re.M)
    [topic] = [e["event_source"]["arn"] for e in cli.stage_config["events"]
               if "event_source" in e]
    assert eval(mapping.group(1)) == {topic: ["handlers.ses_events.handle"]}  # noqa: S307
    assert cli.stage_config["keep_warm"] is False


def test_stage_settings_are_safe_for_lambda(zappa_stage):
    from tracker.config import DEFAULTS

    cli, config = zappa_stage, zappa_stage.stage_config
    assert cli.app_function == "app.app"
    assert cli.runtime == f"python{prebuild.PYTHON_VERSION}" and cli.debug is False
    assert {"boto3", "botocore", "tests", "__pycache__"} <= set(config["exclude"])
    assert cli.dead_letter_config["TargetArn"].startswith("arn:aws:sqs:")
    env = cli.environment_variables
    assert {"TABLE_NAME", "MAIL_FROM", "BASE_URL"} <= set(env)
    assert env["BASE_URL"].startswith("https://")
    # Secrets live on the function (python -m deploy.secret), never in this file.
    assert "SECRET_KEY" not in json.dumps(config)
    # A run stops starting work with RESERVE_MILLIS left, and a claimed email's lease
    # must outlive the longest run that could still be sending it.
    assert DEFAULTS["RESERVE_MILLIS"] < cli.timeout_seconds * 1000
    assert cli.timeout_seconds < DEFAULTS["LEASE_SECONDS"]


def test_policy_grants_only_the_stages_table_sender_logs_and_dead_letters(zappa_stage):
    cli, stage = zappa_stage, zappa_stage.api_stage
    policy = json.loads(cli.zappa.attach_policy)  # what Zappa puts on the role
    env = cli.environment_variables
    region, account = cli.dead_letter_config["TargetArn"].split(":")[3:5]
    assert region == cli.aws_region
    arn = f"{region}:{account}"
    granted = {(action, resource, json.dumps(s.get("Condition"), sort_keys=True))
               for s in policy["Statement"] if s["Effect"] == "Allow"
               for action in _listed(s["Action"]) for resource in _listed(s["Resource"])}
    table = f"arn:aws:dynamodb:{arn}:table/{env['TABLE_NAME']}"
    logs = f"arn:aws:logs:{arn}:log-group:/aws/lambda/{cli.lambda_name}"
    sender = json.dumps({"StringEquals": {"ses:FromAddress": env["MAIL_FROM"]}})
    assert granted == {
        *((f"logs:{a}", r, "null") for a in ("CreateLogGroup", "CreateLogStream",
                                             "PutLogEvents") for r in (logs, logs + ":*")),
        *((f"dynamodb:{a}", table, "null") for a in (
            "GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem")),
        ("dynamodb:Query", f"{table}/index/*", "null"),
        *((f"ses:{a}", f"arn:aws:ses:{arn}:identity/*", sender)
          for a in ("SendEmail", "SendRawEmail")),
        ("sqs:SendMessage", cli.dead_letter_config["TargetArn"], "null"),
    }
    assert cli.lambda_name == f"esim-tracker-{stage}"


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def test_secret_is_added_to_the_function_once_and_never_replaced(lambda_aws):
    from deploy.secret import ensure_secret_key
    from tracker import aws

    role = aws.client("iam").create_role(RoleName="esim-tracker-prod-role",
                                         AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    pass\n")
    functions = aws.client("lambda")
    functions.create_function(
        FunctionName="esim-tracker-prod", Runtime="python3.11", Role=role,
        Handler="handler.lambda_handler", Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {"SET_BY_HAND": "1"}})

    def variables():
        config = functions.get_function_configuration(FunctionName="esim-tracker-prod")
        return config["Environment"]["Variables"]

    assert ensure_secret_key(functions, "esim-tracker-prod") is True
    first = variables()
    assert len(first["SECRET_KEY"]) >= 32 and first["SET_BY_HAND"] == "1"
    assert ensure_secret_key(functions, "esim-tracker-prod") is False
    assert variables() == first
