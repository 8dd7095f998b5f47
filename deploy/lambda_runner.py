"""Run a Lambda package the way AWS Lambda runs it, offline.

The zip is unpacked into a folder (Lambda's /var/task), and a fresh Python of the
runtime's own minor version (zappa_settings.json's ``runtime``, found as the prebuild
finds it) with no site-packages, whose path holds only that folder and the boto3 that
Lambda's runtime ships beside it, imports the function's handler (``lambda_handler`` of
zappa_settings.json) and calls it with each event in turn: one process is one
container, cold for the first event and warm for the rest. An import that raises is
an init error: every event gets its traceback, as Lambda answers them.

The process gets what Lambda gives a function and nothing else (``lambda_environment``):
the function's own ``Environment``, which is Zappa's ``aws_environment_variables``
(never its ``environment_variables``: Zappa writes those into the zip's
zappa_settings.py, and its handler sets them only once it is running), Lambda's own
variables, and the few a test harness needs to reach emulated AWS (``HARNESS``). A
function whose ``layers`` hold AWS's Parameters and Secrets extension gets an offline
stand-in for it (deploy/secrets_extension.py), which answers only once the first
invocation has begun, as the real one does.

    from deploy.lambda_runner import ensure_package, function_of, invoke
    run = invoke(ensure_package("dev"), [event], function=function_of("dev"),
                 harness={"AWS_ENDPOINT_URL": moto})
    run.results[0].value, run.results[0].error, run.results[0].millis, run.import_millis
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# What Lambda's python runtime puts on the path besides the package and the stdlib.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

# What a package is built from: when any of it is newer than the zip, rebuild.
SOURCES = ("app.py", "handlers", "tracker", "operators", "templates", "static",
           "translations", "requirements.txt", "zappa_settings.json", "deploy/prebuild.py")

# The execution role's temporary credentials, which Lambda puts in every function's
# environment; emulated AWS takes any. The session token is also what the Parameters
# and Secrets extension wants in its X-Aws-Parameters-Secrets-Token header.
ROLE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIALAMBDAROLEEXAMPLE",
                    "AWS_SECRET_ACCESS_KEY": "lambda-role-secret-access-key",
                    "AWS_SESSION_TOKEN": "lambda-role-session-token"}

# What a test or the bench may add to Lambda's variables, and only this: where emulated
# AWS listens (boto3's own endpoint variables), and the port of the stand-in extension
# (the extension's documented variable, which the runner sets itself). Anything else,
# a stage variable or a key above all, would measure a function Lambda never runs.
HARNESS = re.compile(r"AWS_ENDPOINT_URL(_[A-Z0-9_]+)?|PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")

# AWS's layer, by region and architecture (…:layer:AWS-Parameters-and-Secrets-Lambda-
# Extension[-Arm64]:<version>); see the README's Secrets section for where it is listed.
SECRETS_EXTENSION_LAYER = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:"
    r"AWS-Parameters-and-Secrets-Lambda-Extension(-Arm64)?:\d+")

_DRIVER = r"""
import os, sys, time
environ_at_start = sorted(os.environ)
modules_before = set(sys.modules)
import importlib, json, traceback, uuid

result_file, task_root, runtime_root = sys.argv[1:4]
spec = json.load(sys.stdin)
started = time.perf_counter()
module, name = spec["handler"].rsplit(".", 1)
try:
    lambda_handler, init_error = getattr(importlib.import_module(module), name), None
except Exception:
    lambda_handler, init_error = None, traceback.format_exc()
import_millis = (time.perf_counter() - started) * 1000
init_ended_at = time.time()
init_modules = sorted(set(sys.modules) - modules_before)


class Context:
    # The attributes of Lambda's context object that code reads.
    def __init__(self):
        name = spec["function_name"]
        self.function_name, self.function_version = name, "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{spec['region']}:{spec['account']}:function:{name}")
        self.memory_limit_in_mb = str(spec["memory_mb"])
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local/[$LATEST]" + uuid.uuid4().hex
        self._deadline = time.monotonic() + spec["timeout_seconds"]

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def begin_invoke_phase():
    # As Lambda's Extensions API tells each extension: an INVOKE event has begun.
    phase, ack = spec["phase_pipe"]
    os.write(phase, b"I")
    os.read(ack, 1)


results = []
for event in spec["events"]:
    if spec["phase_pipe"] and not results:
        begin_invoke_phase()
    context, started = Context(), time.perf_counter()
    cpu = time.process_time()
    try:
        if init_error:
            raise RuntimeError(init_error)
        # Lambda hands the result back as JSON; what JSON can't carry is an error there.
        value, error = json.loads(json.dumps(lambda_handler(event, context))), None
    except Exception:
        value, error = None, traceback.format_exc()
    results.append({"value": value, "error": error,
                    "millis": (time.perf_counter() - started) * 1000,
                    "cpu_millis": (time.process_time() - cpu) * 1000, "at": time.time(),
                    "process_cpu_millis": time.process_time() * 1000})


import sysconfig

roots = ((task_root, "package"), (runtime_root, "runtime"),
         (sysconfig.get_paths()["stdlib"], "stdlib"))


def origin(module):
    path = getattr(module, "__file__", None)
    if not path:
        return "builtin"
    return next((kind for root, kind in roots if path.startswith(root + "/")), "elsewhere")


origins = {name: origin(module) for name, module in sorted(sys.modules.items())
           if "." not in name and not name.startswith("_")}
with open(result_file, "w") as out:
    json.dump({"results": results, "import_millis": import_millis, "origins": origins,
               "environ_at_start": environ_at_start, "init_modules": init_modules,
               "init_ended_at": init_ended_at}, out)
"""


@dataclass(frozen=True)
class Function:
    """A Lambda function as `zappa deploy` creates it from a stage's settings."""

    name: str
    handler: str  # the module.function Lambda imports and calls
    environment: dict[str, str]  # its real Environment: Zappa's aws_environment_variables
    region: str
    memory_mb: int = 512
    timeout_seconds: int = 30
    layers: tuple[str, ...] = ()

    @property
    def has_secrets_extension(self) -> bool:
        """Whether one of its layers is AWS's Parameters and Secrets extension."""
        return any(SECRETS_EXTENSION_LAYER.fullmatch(arn) for arn in self.layers)


@dataclass(frozen=True)
class Result:
    """One invocation: what ``lambda_handler`` returned (via JSON), or its traceback."""

    value: Any
    error: str | None
    millis: float
    at: float  # the wall clock when it answered (the process goes on to exit after)
    cpu_millis: float = 0.0  # CPU time the process spent on it
    process_cpu_millis: float = 0.0  # CPU time the process had spent since it started


@dataclass(frozen=True)
class Run:
    """One process, that is one container, and everything it was asked to handle."""

    results: list[Result]
    import_millis: float  # importing the handler (the app with it), a cold start's init
    origins: dict[str, str]  # top-level module -> package|runtime|stdlib|builtin|elsewhere
    log: str  # stdout and stderr, which Lambda sends to CloudWatch
    environ_at_start: list[str] = field(default_factory=list)  # variable names it started with
    init_modules: list[str] = field(default_factory=list)  # modules imported during init
    init_ended_at: float = 0.0  # the wall clock when init ended
    spawned_at: float = 0.0  # the wall clock just before the process was started
    extension: Any = None  # the stand-in secrets extension, when the function has its layer


def stage_settings(stage: str) -> dict:
    """A stage's Zappa settings with ``extends`` resolved as Zappa does (key by key)."""
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    own = dict(settings[stage])
    parent = own.pop("extends", None)
    return {**stage_settings(parent), **own} if parent else own


def function_name(stage: str) -> str:
    """The Lambda function Zappa names for a stage (``<project_name>-<stage>``)."""
    return f"{stage_settings(stage)['project_name']}-{stage}"


def function_of(stage: str, settings: dict | None = None) -> Function:
    """The function Zappa deploys for a stage (or for ``settings`` of one), with its
    defaults where the settings are silent (zappa/cli.py ``load_settings``)."""
    settings = stage_settings(stage) if settings is None else settings
    return Function(
        name=f"{settings['project_name']}-{stage}",
        handler=settings.get("lambda_handler", "handler.lambda_handler"),
        environment=dict(settings.get("aws_environment_variables") or {}),
        region=settings["aws_region"], memory_mb=settings.get("memory_size", 512),
        timeout_seconds=settings.get("timeout_seconds", 30),
        layers=tuple(settings.get("layers") or ()))


def ensure_package(stage: str = "dev") -> Path:
    """``dist/<stage>.zip``, rebuilt with ``make package`` unless newer than its sources."""
    zip_path = ROOT / "dist" / f"{stage}.zip"
    if not zip_path.exists() or zip_path.stat().st_mtime < _newest_source():
        done = subprocess.run(["make", "-s", "package", f"STAGE={stage}"], cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"make package failed:\n{done.stdout}\n{done.stderr}")
    return zip_path


def _newest_source() -> float:
    # The zip holds HEAD's files (deploy/prebuild.py): a new commit counts as a change.
    head = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    newest = float(head or 0)
    for name in SOURCES:
        path = ROOT / name
        for file in [path] if path.is_file() else path.rglob("*"):
            if file.is_file() and file.suffix not in (".pyc", ".mo"):
                newest = max(newest, file.stat().st_mtime)
    return newest


def unpack(zip_path: Path, into: Path) -> Path:
    """Unzip a package as Lambda does (into what becomes /var/task)."""
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(into)
    return into


def runtime_folder() -> Path:
    """A folder holding only the runtime's modules, compiled for the runtime's Python.

    Copied once from this Python's own (``dist/lambda-runtime-<version>``, rebuilt when
    boto3's version changes): Lambda's runtime ships its boto3 with bytecode, so a cold
    start never compiles botocore, and neither does this one.
    """
    from importlib import metadata

    from deploy.prebuild import PYTHON_VERSION, compile_bytecode

    folder = ROOT / "dist" / f"lambda-runtime-{PYTHON_VERSION}-boto3-{metadata.version('boto3')}"
    if folder.exists():
        return folder
    folder.parent.mkdir(exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="lambda-runtime-", dir=folder.parent))
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        if source.is_dir():
            shutil.copytree(source, building / source.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, building / source.name)
    compile_bytecode(building)
    try:
        building.rename(folder)
    except OSError:  # another process got there first
        shutil.rmtree(building, ignore_errors=True)
    return folder


def runtime_python() -> str:
    """The interpreter of the runtime's own minor version (deploy/prebuild.py finds it)."""
    from deploy.prebuild import runtime_python

    return runtime_python()


def lambda_environment(function: Function, *, task: Path, runtime: Path) -> dict[str, str]:
    """What a new execution environment of ``function`` holds, and nothing from this shell.

    Lambda's defined runtime variables (docs.aws.amazon.com/lambda/latest/dg/
    configuration-envvars.html#configuration-envvars-runtime), its unreserved ones for
    the python runtime (PATH, LANG, PYTHONPATH, pointing at this emulation's folders),
    then the function's own Environment, which may not override a reserved one. Not
    emulated: AWS_LAMBDA_RUNTIME_API (the driver calls the handler itself, there is no
    runtime API to ask), _X_AMZN_TRACE_ID (set per invocation when tracing is active)
    and the X-Ray daemon's address.
    """
    from deploy.prebuild import PYTHON_VERSION

    reserved = {
        "_HANDLER": function.handler, "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{PYTHON_VERSION}",
        "AWS_LAMBDA_FUNCTION_NAME": function.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/04/[$LATEST]0123456789abcdef0123456789abcdef",
        **ROLE_CREDENTIALS,
        "LAMBDA_TASK_ROOT": str(task), "LAMBDA_RUNTIME_DIR": str(runtime), "TZ": ":UTC",
    }
    overridden = sorted(set(function.environment) & set(reserved))
    if overridden:
        raise ValueError(f"Lambda reserves these variables: {', '.join(overridden)}")
    unreserved = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8",
                  "PYTHONPATH": os.pathsep.join([str(task), str(runtime)])}
    return {**unreserved, **function.environment, **reserved}


def invoke(package: Path, events: list[dict], *, function: Function,
           harness: dict[str, str] | None = None, python: str | None = None) -> Run:
    """Call ``function``'s handler with each event in one fresh process; see the module doc.

    ``package`` is the zip or a folder already unpacked; ``harness`` holds the endpoints
    of emulated AWS (``HARNESS`` says which names); ``python`` defaults to the runtime's.
    """
    harness = dict(harness or {})
    foreign = sorted(name for name in harness if not HARNESS.fullmatch(name))
    if foreign:
        raise ValueError(f"Lambda does not give a function {', '.join(foreign)}: set it in "
                         "the stage's aws_environment_variables, or store it in SSM")
    with tempfile.TemporaryDirectory(prefix="lambda-") as scratch:
        scratch = Path(scratch)
        task = package if package.is_dir() else unpack(package, scratch / "task")
        environ = lambda_environment(function, task=task, runtime=runtime_folder())
        extension = _start_extension(function, environ, harness) \
            if function.has_secrets_extension else None
        environ.update(harness)
        if extension:
            environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] = str(extension.port)
        try:
            done, report = _run_driver(python or runtime_python(), task, environ, events,
                                       function, scratch, extension)
        finally:
            if extension:
                extension.stop()
    return Run(results=[Result(**r) for r in report["results"]],
               import_millis=report["import_millis"], origins=report["origins"],
               log=done.stdout, environ_at_start=report["environ_at_start"],
               init_modules=report["init_modules"], init_ended_at=report["init_ended_at"],
               spawned_at=report["spawned_at"], extension=extension)


def _start_extension(function: Function, environ: dict, harness: dict):
    """The stand-in for the extension's layer, backed by the harness's SSM."""
    from deploy.secrets_extension import FakeExtension

    # Where emulated AWS listens for all services: a test may point the function's own
    # SSM calls elsewhere (AWS_ENDPOINT_URL_SSM) to show it makes none.
    endpoint = harness.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise ValueError("the secrets extension stand-in needs emulated SSM: give the "
                         "harness AWS_ENDPOINT_URL")
    return FakeExtension(endpoint=endpoint, region=function.region,
                         credentials=ROLE_CREDENTIALS, environ=environ).start()


def _run_driver(python: str, task: Path, environ: dict, events: list[dict],
                function: Function, scratch: Path, extension):
    """One process through the driver; (the finished process, the driver's report)."""
    # The account in the context's ARN: the emulator's (moto's MOTO_ACCOUNT_ID, which the
    # tests set to the settings' account), else moto's default.
    spec = {"events": events, "function_name": function.name, "region": function.region,
            "account": os.environ.get("MOTO_ACCOUNT_ID", "123456789012"),
            "memory_mb": function.memory_mb, "timeout_seconds": function.timeout_seconds,
            "handler": function.handler, "phase_pipe": None}
    pipes: list[int] = []
    relay = None
    if extension:
        (phase_r, phase_w), (ack_r, ack_w) = os.pipe(), os.pipe()
        pipes = [phase_r, phase_w, ack_r, ack_w]
        spec["phase_pipe"] = [phase_w, ack_r]
        relay = threading.Thread(target=_relay_phase, args=(phase_r, ack_w, extension),
                                 daemon=True)
        relay.start()
    result_file = scratch / "results.json"
    spawned_at = time.time()
    try:
        # -S: no site-packages at all; -B: /var/task is read-only, so no bytecode.
        done = subprocess.run(
            [python, "-S", "-B", "-c", _DRIVER, str(result_file), str(task),
             str(environ["LAMBDA_RUNTIME_DIR"])],
            input=json.dumps(spec), cwd=task, env=environ, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=tuple(spec["phase_pipe"] or ()),
            timeout=function.timeout_seconds * max(1, len(events)) + 60)
    finally:
        if relay:
            os.close(pipes[1])  # with the process's copy gone too, the relay reads EOF
            relay.join(10)
            for fd in (pipes[0], *pipes[2:]):
                os.close(fd)
    if not result_file.exists():
        raise RuntimeError(f"the Lambda process died (exit {done.returncode}):\n"
                           f"{done.stdout[-4000:]}")
    return done, dict(json.loads(result_file.read_text()), spawned_at=spawned_at)


def _relay_phase(phase_r: int, ack_w: int, extension) -> None:
    """Tell the extension the INVOKE phase began when the driver says so, then answer."""
    try:
        if os.read(phase_r, 1) == b"I":
            extension.begin_invoke_phase()
            os.write(ack_w, b"k")
    except OSError:  # the process ended before its first invocation
        pass
