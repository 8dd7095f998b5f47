"""The Lambda package as Zappa builds it and as Lambda runs it, offline.

`make package STAGE=dev` builds dist/dev.zip (reused while newer than its sources); each
test unzips it and calls the handler the settings name (``handlers.entry.lambda_handler``)
in a fresh Python holding only the package and the runtime's boto3, with only what
Lambda gives the function (its real Environment, Lambda's own variables) plus moto's
endpoint, with the events API Gateway, EventBridge (through Zappa's rule) and SNS
deliver. Its secrets are in moto's SSM, read through a stand-in for the Parameters and
Secrets extension its layer adds (deploy/secrets_extension.py).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
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
from tests.conftest import ACCOUNT, ROOT, load_event
from tests.helpers import links_in

pytestmark = pytest.mark.package

STAGE = "dev"
SETTINGS = lambda_runner.stage_settings(STAGE)
ENV = SETTINGS["environment_variables"]
FUNCTION = lambda_runner.function_name(STAGE)
LAMBDA_FUNCTION = lambda_runner.function_of(STAGE)  # as `zappa deploy` creates it
ADDRESS = "traveller@example.com"  # the address the sample bounce is about
BAKU = ZoneInfo("Asia/Baku")
# What the zip must hold of this repository's top level, and nothing else of it.
# (__pycache__: the zip's root one holds app.py's and Zappa's handler.py's bytecode;
# templates ship compiled, in templates_compiled.)
RUNTIME_FILES = {"app.py", "handlers", "tracker", "operators", "static", "translations",
                 "__pycache__"}


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
           secret: str | None = "package-test-secret",
           function: lambda_runner.Function = LAMBDA_FUNCTION,
           **endpoints: str) -> lambda_runner.Run:
    """Invoke the package with events in one fresh process (one container).

    Only what Lambda gives the function, and moto's endpoint (``endpoints`` may point a
    service elsewhere). ``secret``, when given, is stored first as the stage's
    SECRET_KEY in moto's SSM, where `python -m deploy.secret` puts it; with None,
    whatever a test stored there is what the function finds.
    """
    if secret:
        from tracker import aws

        aws.client("ssm").put_parameter(Name=ENV["SECRETS_PATH"] + "SECRET_KEY", Value=secret,
                                        Type="SecureString", Overwrite=True)
    return lambda_runner.invoke(unpacked, list(events), function=function,
                                harness={"AWS_ENDPOINT_URL": moto_endpoint, **endpoints})


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
    # Bytecode for every module roughly doubles it (README, Benchmarks); Lambda takes 50 MB.
    assert package.stat().st_size < 7_500_000
    tops = {name.split("/")[0] for name in names}
    for entry in (p.name for p in ROOT.iterdir()):
        assert (entry in tops) == (entry in RUNTIME_FILES), (
            f"{entry}: not a runtime file; deploy/prebuild.py's RUNTIME_PATHS lists those")
    assert {"handler.py", "zappa_settings.py"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "dns", "pytest", "moto"}
    assert not [n for n in names if "/tests/" in n]
    # Compiled extensions for the runtime and the architecture, whatever this machine is
    # (the runner on x86_64 then uses their pure-Python fallbacks).
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[prebuild.ARCHITECTURE]
    tag = prebuild.PYTHON_VERSION.replace(".", "")
    extensions = [n for n in names if n.endswith(".so")]
    assert extensions and all(n.endswith(f".cpython-{tag}-{machine}-linux-gnu.so")
                              for n in extensions), extensions
    assert not [n for n in names if n.startswith(("tracker/", "templates/"))
                for sandbox in ("local", "motoserver", "outbox") if f"/{sandbox}." in n
                or f"/{sandbox}_" in n]
    assert {Path(n).stem for n in names
            if n.startswith("babel/locale-data/") and n.endswith(".dat")} \
        == prebuild.BABEL_LOCALES
    for lang in ("en", "zh", "az", "ru"):
        assert f"translations/{lang}/LC_MESSAGES/messages.mo" in names


def test_package_ships_bytecode_for_the_runtime_that_lambda_never_checks(package):
    tag = f"cpython-{prebuild.PYTHON_VERSION.replace('.', '')}"
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        pycs = {n for n in names if n.endswith(".pyc")}
        # Every module has its bytecode, Zappa's root handler.py included; Zappa adds
        # the settings module and empty __init__.py files (some in __pycache__) after.
        missing = [n for n in names if n.endswith(".py") and n != "zappa_settings.py"
                   and not n.startswith("templates_compiled/")
                   and archive.getinfo(n).file_size and _pyc_of(n, tag) not in pycs]
        assert not missing, missing[:10]
        # No other Python's bytecode (the compiled templates' magic number says theirs).
        assert all(f".{tag}.pyc" in n for n in pycs if not n.startswith("templates_compiled/"))
        magic = {archive.read(n)[:4] for n in pycs}
        assert len(magic) == 1
        # PEP 552 flags: hash-based (bit 0), source never checked (bit 1 clear); the
        # zip's 1980 timestamps would make timestamp-based files stale at every start.
        flags = {int.from_bytes(archive.read(n)[4:8], "little") for n in pycs}
    assert flags == {0b01}
    # Every template ships compiled to Python by the prebuild, instead of its source:
    # as bytecode if the form's first answer loads it, else as Python.
    from jinja2.loaders import ModuleLoader

    templates = [str(t.relative_to(ROOT / "templates")) for t in (ROOT / "templates").rglob("*")
                 if t.suffix in (".html", ".txt")
                 and str(t.relative_to(ROOT)) not in prebuild.SANDBOX_ONLY]
    shipped = {n.removeprefix("templates_compiled/").rsplit(".", 1)[0]
               for n in names if n.startswith("templates_compiled/tmpl_")}
    assert shipped == {ModuleLoader.get_module_filename(t)[:-3] for t in templates}
    assert not [n for n in names if n.startswith("templates/")]
    for first in ("base.html", "form.html", "error.html"):
        assert f"templates_compiled/{ModuleLoader.get_module_filename(first)}c" in pycs


def test_package_ships_no_bytecode_without_its_source_and_nothing_no_request_loads(package):
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
    # A .pyc in __pycache__ is loaded only beside its source: without one (Zappa's CLI,
    # whose sources exclude_glob drops) it is dead weight.
    orphans = [n for n in names if "/__pycache__/" in n and n.endswith(".pyc")
               and _source_of(n) not in names]
    assert not orphans, orphans
    assert not [n for n in names if n.endswith(".dist-info/RECORD")]
    # Werkzeug's debugger and demo app, Babel's catalog tools, market calendars: no
    # request of the tracker loads them (tests/test_package.py's runs load none).
    for never in ("zappa/cli.py", "zappa/core.py", "werkzeug/debug/", "werkzeug/testapp.py",
                  "babel/messages/", "holidays/financial/nasdaq.py"):
        assert not [n for n in names if n.startswith(never)], never


def _source_of(pyc: str) -> str:
    folder, _, name = pyc.rpartition("/__pycache__/")
    return f"{folder}/{name.split('.')[0]}.py"


def _pyc_of(module: str, tag: str) -> str:
    folder, _, name = module.rpartition("/")
    return f"{folder + '/' if folder else ''}__pycache__/{name[:-3]}.{tag}.pyc"


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
    # The sample is the stage's own: its feedback topic, its MAIL_FROM, SES's
    # configuration-set event record. Nothing is rewritten for the test.
    bounce = load_event("sns_bounce_permanent.json")
    posted, handled, job = run_lambda(submitted_form(pages, "ru"), bounce,
                                      schedule_at(tomorrow_morning_in_baku()))
    assert posted["statusCode"] == 303
    assert handled["suppressed"] == 1 and handled["stopped"] == 1
    assert job["sent"] == 0
    assert len(outbox()) == 1  # the receipt, and nothing after the bounce
    [request] = requests_in(lambda_aws)
    assert request["status"] in ("failed", "stopped") and "next_kind" not in request


@pytest.mark.parametrize("topic", [
    f"arn:aws:sns:eu-central-1:{ACCOUNT}:esim-tracker-ses-feedback",  # the retired one
    f"arn:aws:sns:eu-central-1:{ACCOUNT}:esim-tracker-prod-ses-feedback",  # prod's
    "arn:aws:sns:eu-central-1:999999999999:esim-tracker-dev-ses-feedback",  # a mistyped id
], ids=["retired-shared-topic", "other-stage", "other-account"])
def test_a_record_of_any_other_topic_is_an_error_so_lambda_retries_then_dead_letters_it(
        pages, unpacked, moto_endpoint, lambda_aws, topic):
    stray = load_event("sns_bounce_permanent.json")
    stray["Records"][0]["Sns"]["TopicArn"] = topic
    posted, refused = invoke(unpacked, moto_endpoint, submitted_form(pages, "en"),
                             stray).results
    assert posted.error is None and posted.value["statusCode"] == 303
    assert refused.error and "UnroutableEvent" in refused.error and topic in refused.error
    [request] = requests_in(lambda_aws)
    assert request["status"] == "open"  # nothing of the stray record was applied


def test_a_record_that_is_no_sns_message_is_an_error_too(unpacked, moto_endpoint, lambda_aws):
    queue = {"Records": [{"eventSource": "aws:sqs", "body": "{}",
                          "eventSourceARN": f"arn:aws:sqs:eu-central-1:{ACCOUNT}:q"}]}
    [result] = invoke(unpacked, moto_endpoint, queue).results
    assert result.error and "UnroutableEvent" in result.error


def test_packaged_process_loads_nothing_from_outside_the_package_and_runtime(pages):
    assert values(pages)[0]["statusCode"] == 200
    assert pages.origins["flask"] == "package" and pages.origins["app"] == "package"
    assert pages.origins["boto3"] == "runtime"
    assert "elsewhere" not in pages.origins.values(), pages.origins
    # The prebuild parsed the TOML files: a cold start pays for no TOML parser.
    assert "tomllib" not in pages.origins


def test_package_ships_its_toml_files_parsed(package):
    import pickle
    import tomllib

    with zipfile.ZipFile(package) as archive:
        tomls = [n for n in archive.namelist() if n.endswith(".toml")]
        assert {"tracker/workdays.toml", "operators/azercell.toml"} <= set(tomls)
        for name in tomls:
            parsed = pickle.loads(archive.read(name + ".pickle"))
            assert parsed == tomllib.loads(archive.read(name).decode()), name


def test_lambda_gives_the_function_its_own_environment_never_the_stages_variables(pages):
    """Zappa's environment_variables live in the zip's zappa_settings.py, which its
    handler applies once it runs; the process starts with aws_environment_variables,
    Lambda's variables and (here) moto's endpoint, nothing else."""
    assert values(pages)[0]["statusCode"] == 200
    started_with = set(pages.environ_at_start)
    stage_only = set(ENV) - set(SETTINGS["aws_environment_variables"])
    assert stage_only and not started_with & stage_only, started_with & stage_only
    lambdas = set(lambda_runner.lambda_environment(LAMBDA_FUNCTION, task=Path("/var/task"),
                                                   runtime=Path("/var/runtime")))
    harness = {"AWS_ENDPOINT_URL", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"}
    # LC_CTYPE: Python's own locale coercion (PEP 538) where en_US.UTF-8 is missing.
    assert started_with - {"LC_CTYPE"} == lambdas | harness
    assert set(SETTINGS["aws_environment_variables"]) <= started_with


def test_the_runner_refuses_to_give_a_function_what_lambda_would_not(unpacked):
    for variable in ("TABLE_NAME", "SECRET_KEY", "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"):
        with pytest.raises(ValueError, match=variable):
            lambda_runner.invoke(unpacked, [page()], function=LAMBDA_FUNCTION,
                                 harness={"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                                          variable: "1"})


def test_the_app_is_built_during_lambdas_init_from_the_functions_real_environment(
        unpacked, moto_endpoint):
    """INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT in aws_environment_variables: Zappa's handler
    builds the app while Lambda's init runs at full CPU, not in the first request."""
    built = invoke(unpacked, moto_endpoint, page())
    assert values(built)[0]["statusCode"] == 200
    assert {"app", "tracker.web", "flask_wtf"} <= set(built.init_modules)
    # The same package and event, the variable left out: the first request builds it.
    environment = {k: v for k, v in LAMBDA_FUNCTION.environment.items()
                   if k != "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"}
    lazy = invoke(unpacked, moto_endpoint, page(), function=dataclasses.replace(
        LAMBDA_FUNCTION, environment=environment))
    assert values(lazy)[0]["statusCode"] == 200
    assert "app" not in lazy.init_modules and "handler" in lazy.init_modules


def test_secrets_come_through_the_extension_in_the_first_invocation_without_botocore(
        unpacked, moto_endpoint, lambda_aws):
    from deploy import secret
    from tracker import aws

    secret.ensure(aws.client("ssm"), ENV["SECRETS_PATH"])
    # The function's own SSM calls would go nowhere (the discard port); the extension's
    # reach moto's SSM.
    run = invoke(unpacked, moto_endpoint, page(), page(), secret=None,
                 AWS_ENDPOINT_URL_SSM="http://127.0.0.1:9")
    first, second = values(run)
    assert first["statusCode"] == second["statusCode"] == 200
    calls = run.extension.calls
    # One GetParameter per name, all in the INVOKE phase, none in the second request;
    # the fallbacks do not exist before the first rotation.
    assert sorted((c.name.rsplit("/", 1)[1], c.phase, c.status) for c in calls) == [
        ("ADDRESS_PEPPER", "invoke", 200), ("SECRET_KEY", "invoke", 200),
        ("SECRET_KEY_FALLBACKS", "invoke", 400)]
    assert all(c.at >= run.init_ended_at for c in calls)


def test_without_the_extensions_layer_the_secrets_come_from_ssm_through_boto3(
        unpacked, moto_endpoint, lambda_aws):
    without = dataclasses.replace(LAMBDA_FUNCTION, layers=())
    run = invoke(unpacked, moto_endpoint, page(), function=without)
    assert values(run)[0]["statusCode"] == 200 and run.extension is None
    # Its SSM calls are the only way to its key: pointed nowhere, it has none.
    broken = invoke(unpacked, moto_endpoint, page(), function=without,
                    AWS_ENDPOINT_URL_SSM="http://127.0.0.1:9")
    assert broken.results[0].error and "EndpointConnectionError" in broken.results[0].error


def test_packaged_app_refuses_to_start_on_lambda_without_its_secret(
        unpacked, moto_endpoint, lambda_aws):
    run = invoke(unpacked, moto_endpoint, page(), secret=None)
    [result] = run.results
    assert result.error and "SECRET_KEY" in result.error and "deploy.secret" in result.error


def test_first_deploy_after_the_secret_command_answers_zappas_status_check_and_runs_the_job(
        unpacked, moto_endpoint, lambda_aws):
    """What `zappa deploy` does after creating the function: Zappa's schedule fires the
    job, and its status check (cli.touch_endpoint) GETs / and raises on any 5xx."""
    from deploy import secret
    from tracker import aws

    ssm = aws.client("ssm")
    secret.ensure(ssm, ENV["SECRETS_PATH"])
    run = invoke(unpacked, moto_endpoint, page(), schedule_at(tomorrow_morning_in_baku()),
                 secret=None)
    response, job = values(run)
    assert response["statusCode"] == 200 and "csrf_token" in response["body"]
    assert job["sent"] == 0 and job["errors"] == 0
    assert '"JobRunCompleted":1' in run.log  # its EMF line
    # Its keys came through the extension, during the first invocation.
    assert [c.phase for c in run.extension.calls] == ["invoke"] * 3


def test_sns_message_naming_a_function_is_never_run(unpacked, moto_endpoint, lambda_aws):
    forged = load_event("sns_bounce_permanent.json")
    forged["Records"][0]["Sns"]["Message"] = json.dumps({"command": "handlers.followup.run"})
    guarded = invoke(unpacked, moto_endpoint, forged)
    # From the stage's topic it is SES feedback that says nothing: ignored, nothing run.
    [handled] = values(guarded)
    assert handled["ignored"] == 1 and "followups run done" not in guarded.log
    # Without the entry handler, Zappa's own runs the function the message names.
    unguarded = invoke(unpacked, moto_endpoint, forged, function=dataclasses.replace(
        LAMBDA_FUNCTION, handler="handler.lambda_handler"))
    [ran] = values(unguarded)
    assert "sent" in ran and "followups run done" in unguarded.log


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
         "--lambda-arn", f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:esim-tracker-prod",
         "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/esim-tracker-prod-ZappaLambdaExecutionRole"],
        cwd=ROOT, env=OFFLINE, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resources = json.loads(output.read_text())["Resources"]
    methods = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"]
    assert methods and all(m["Properties"]["Integration"]["Type"] == "AWS_PROXY"
                           for m in methods)
    # API Gateway invokes the function as the function's own role: hence the role's
    # trust in apigateway.amazonaws.com and its lambda:InvokeFunction on itself.
    assert {m["Properties"]["Integration"]["Credentials"] for m in methods} == {
        f"arn:aws:iam::{ACCOUNT}:role/esim-tracker-prod-ZappaLambdaExecutionRole"}


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
    # Zappa schedules the job and nothing else: SNS records never reach its routing
    # (handlers/entry.py takes them), and the stack owns the topic's subscription.
    assert [e["function"] for e in cli.stage_config["events"]] == ["handlers.followup.run"]
    mapping = re.search(r"^AWS_EVENT_MAPPING=(.*)$", cli.get_zappa_settings_string(), re.M)
    assert eval(mapping.group(1)) == {}  # noqa: S307
    # The stack's topic (deploy/operations.yaml) in the stage's region and account (the
    # policy test below holds that account to the policies').
    assert re.fullmatch(rf"arn:aws:sns:{cli.aws_region}:\d{{12}}:esim-tracker-{stage}-ses-feedback",
                        cli.environment_variables["FEEDBACK_TOPIC_ARN"])
    assert cli.stage_config["keep_warm"] is False


def test_stage_settings_are_safe_for_lambda(zappa_stage):
    from tracker.config import DEFAULTS

    cli, config = zappa_stage, zappa_stage.stage_config
    assert cli.app_function == "app.app"
    assert cli.lambda_handler == "handlers.entry.lambda_handler"  # Zappa's, guarded
    # Every stage shares the runtime the prebuild builds wheels and bytecode for.
    assert cli.runtime == f"python{prebuild.PYTHON_VERSION}" == "python3.13"
    assert cli.architecture == prebuild.ARCHITECTURE == "arm64"
    assert all(p.endswith("_aarch64") for p in prebuild.PLATFORMS)
    assert cli.debug is False
    assert {"boto3", "botocore", "tests"} <= set(config["exclude"])
    # The dead-letter queue is attached by deploy/operations.yaml, which keeps it so.
    assert not cli.dead_letter_config
    env = cli.environment_variables
    assert {"TABLE_NAME", "MAIL_FROM", "BASE_URL", "SECRETS_PATH"} <= set(env)
    assert env["BASE_URL"].startswith("https://")
    # The app is built during Lambda's init only if the function's real Environment
    # says so: Zappa's handler reads the variable on import, before zappa_settings.py.
    assert cli.aws_environment_variables["INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"] == "1"
    assert "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT" not in env
    # AWS's Parameters and Secrets extension, for the stage's region and architecture.
    [layer] = cli.layers
    suffix = "-Arm64" if cli.architecture == "arm64" else ""
    assert re.fullmatch(rf"arn:aws:lambda:{cli.aws_region}:\d{{12}}:layer:"
                        rf"AWS-Parameters-and-Secrets-Lambda-Extension{suffix}:\d+", layer)
    assert lambda_runner.function_of(cli.api_stage).has_secrets_extension
    # Secrets live in SSM (python -m deploy.secret), never in this file.
    assert "SECRET_KEY" not in json.dumps(config)
    # Lambda runs as the role; API Gateway assumes it because Zappa's REST API
    # integration names the role as its credentials (core.create_and_setup_methods);
    # EventBridge because PutRule names it (core.schedule_events), for this account's
    # rules only. tests/test_deploy.py evaluates it against what Zappa hands each one.
    events, others = json.loads(cli.zappa.assume_policy)["Statement"]
    account = env["FEEDBACK_TOPIC_ARN"].split(":")[4]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert events["Condition"] == {"StringEqualsIfExists": {"aws:SourceAccount": account}}
    assert set(others["Principal"]["Service"]) == {"lambda.amazonaws.com",
                                                  "apigateway.amazonaws.com"}
    # A run stops starting work with RESERVE_MILLIS left, and a claimed email's lease
    # must outlive the longest run that could still be sending it.
    assert DEFAULTS["RESERVE_MILLIS"] < cli.timeout_seconds * 1000
    assert cli.timeout_seconds < DEFAULTS["LEASE_SECONDS"]


def test_policy_grants_only_the_stages_table_sender_secrets_logs_and_dead_letters(
        zappa_stage):
    cli, stage = zappa_stage, zappa_stage.api_stage
    policy = json.loads(cli.zappa.attach_policy)  # what Zappa puts on the role
    env = cli.environment_variables
    region, account = env["FEEDBACK_TOPIC_ARN"].split(":")[3:5]
    assert region == cli.aws_region
    arn = f"{region}:{account}"
    parameters = f"arn:aws:ssm:{arn}:parameter/esim-tracker/{stage}/*"
    via_ssm = json.dumps({"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"},
                          "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": parameters}},
                         sort_keys=True)
    granted = {(action, resource, json.dumps(s.get("Condition"), sort_keys=True))
               for s in policy["Statement"] if s["Effect"] == "Allow"
               for action in _listed(s["Action"]) for resource in _listed(s["Resource"])}
    table = f"arn:aws:dynamodb:{arn}:table/{env['TABLE_NAME']}"
    logs = f"arn:aws:logs:{arn}:log-group:/aws/lambda/{cli.lambda_name}"
    sender = json.dumps({"StringEquals": {"ses:FromAddress": env["MAIL_FROM"]}})
    assert granted == {
        # The operations stack creates the log group (30-day retention); both actions
        # act on its log streams.
        *((f"logs:{a}", logs + ":*", "null") for a in ("CreateLogStream", "PutLogEvents")),
        *((f"dynamodb:{a}", table, "null") for a in (
            "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem",
            "ConditionCheckItem")),
        ("dynamodb:Query", f"{table}/index/*", "null"),
        # SES v2's SendEmail, raw MIME included; no ses:SendRawEmail (v1) left.
        *(("ses:SendEmail", r, sender) for r in (
            f"arn:aws:ses:{arn}:identity/*",
            f"arn:aws:ses:{arn}:configuration-set/{env['SES_CONFIGURATION_SET']}")),
        ("ssm:GetParameters", parameters, "null"),
        # The Parameters and Secrets extension calls GetParameter, one name at a time,
        # with the function's role (deploy/iam-extra-calls.json).
        ("ssm:GetParameter", parameters, "null"),
        ("kms:Decrypt", f"arn:aws:kms:{arn}:key/*", via_ssm),
        ("sqs:SendMessage", f"arn:aws:sqs:{arn}:esim-tracker-{stage}-dlq", "null"),
        # What API Gateway does with the role: invoke this function, nothing else.
        ("lambda:InvokeFunction", f"arn:aws:lambda:{arn}:function:{cli.lambda_name}", "null"),
    }
    assert cli.lambda_name == f"esim-tracker-{stage}"


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def create_function(functions, name: str, variables: dict) -> None:
    """A function in the emulated account, as an older deploy left it."""
    from tracker import aws

    role = aws.client("iam").create_role(RoleName=f"{name}-role",
                                         AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    pass\n")
    functions.create_function(
        FunctionName=name, Runtime="python3.13", Role=role,
        Handler="handler.lambda_handler", Code={"ZipFile": code.getvalue()},
        Environment={"Variables": variables})


def test_stray_and_uncommitted_files_never_reach_the_zip_and_block_a_deploy(package, tmp_path):
    clone = tmp_path / "clone"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", head], cwd=clone, check=True)
    # The deploy venv the package fixture built, and the recipe it was built from.
    (clone / ".venv-deploy").symlink_to(ROOT / ".venv-deploy")
    for recipe in ("deploy/prebuild.py", "requirements.txt"):
        (clone / recipe).write_bytes((ROOT / recipe).read_bytes())
    strays = {".env": "SECRET_KEY=oops\n", ".idea/workspace.xml": "<project/>\n",
              "scratch.py": "print('draft')\n", "tracker/scratch_notes.py": "# notes\n"}
    for name, text in strays.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    committed = (clone / "tracker/metrics.py").read_text()
    (clone / "tracker/metrics.py").write_text(committed + "UNCOMMITTED = True\n")

    zipped = tmp_path / "stray.zip"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([str(ROOT / ".venv/bin/zappa"), "package", "dev", "-o", str(zipped)],
                          cwd=clone, env=dict(env, VIRTUAL_ENV=str(clone / ".venv-deploy")),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "packaging HEAD; not in it" in done.stderr and "scratch_notes.py" in done.stderr
    with zipfile.ZipFile(zipped) as archive:
        names = set(archive.namelist())
        assert archive.read("tracker/metrics.py").decode() == committed
    assert not names & set(strays), names & set(strays)
    assert not [n for n in names if n.startswith(".idea/") or n.endswith(".env")]

    deploy = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", "import sys; sys.argv = ['zappa', 'deploy', "
         "'dev']; sys.path.insert(0, 'deploy'); import prebuild; prebuild.lean_venv()"],
        cwd=clone, env=env, capture_output=True, text=True)
    assert deploy.returncode != 0
    assert "refusing to deploy uncommitted or untracked files" in deploy.stderr
    assert "tracker/metrics.py" in deploy.stderr and "tracker/scratch_notes.py" in deploy.stderr
