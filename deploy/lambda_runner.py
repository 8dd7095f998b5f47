"""Run a Lambda package the way AWS Lambda runs it, offline.

The zip is unpacked into a folder (Lambda's /var/task), and a fresh Python of the
runtime's own minor version (zappa_settings.json's ``runtime``, found as the prebuild
finds it) with no site-packages, whose path holds only that folder and the boto3 that
Lambda's runtime ships beside it, imports the function's handler (``lambda_handler`` of
zappa_settings.json) and calls it with each event in turn: one process is one
container, cold for the first event and warm for the rest. An import that raises is
an init error: every event gets its traceback, as Lambda answers them.

    from deploy.lambda_runner import ensure_package, invoke
    run = invoke(ensure_package("dev"), [event], function_name="esim-tracker-dev",
                 env={**stage_settings("dev")["environment_variables"],
                      "AWS_ENDPOINT_URL": ..., "SECRET_KEY": ...})
    run.results[0].value, run.results[0].error, run.results[0].millis, run.import_millis
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# What Lambda's python runtime puts on the path besides the package and the stdlib.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

# What a package is built from: when any of it is newer than the zip, rebuild.
SOURCES = ("app.py", "handlers", "tracker", "operators", "templates", "static",
           "translations", "requirements.txt", "zappa_settings.json", "deploy/prebuild.py")

_DRIVER = r"""
import importlib, json, sys, time, traceback, uuid

result_file, task_root, runtime_root = sys.argv[1:4]
spec = json.load(sys.stdin)
started = time.perf_counter()
module, name = spec["handler"].rsplit(".", 1)
try:
    lambda_handler, init_error = getattr(importlib.import_module(module), name), None
except Exception:
    lambda_handler, init_error = None, traceback.format_exc()
import_millis = (time.perf_counter() - started) * 1000


class Context:
    # The attributes of Lambda's context object that code reads.
    def __init__(self):
        name = spec["function_name"]
        self.function_name, self.function_version = name, "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{spec['region']}:123456789012:function:{name}")
        self.memory_limit_in_mb = str(spec["memory_mb"])
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local/[$LATEST]" + uuid.uuid4().hex
        self._deadline = time.monotonic() + spec["timeout_seconds"]

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


results = []
for event in spec["events"]:
    context, started = Context(), time.perf_counter()
    try:
        if init_error:
            raise RuntimeError(init_error)
        # Lambda hands the result back as JSON; what JSON can't carry is an error there.
        value, error = json.loads(json.dumps(lambda_handler(event, context))), None
    except Exception:
        value, error = None, traceback.format_exc()
    results.append({"value": value, "error": error,
                    "millis": (time.perf_counter() - started) * 1000, "at": time.time()})


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
    json.dump({"results": results, "import_millis": import_millis, "origins": origins}, out)
"""


@dataclass(frozen=True)
class Result:
    """One invocation: what ``lambda_handler`` returned (via JSON), or its traceback."""

    value: Any
    error: str | None
    millis: float
    at: float  # the wall clock when it answered (the process goes on to exit after)


@dataclass(frozen=True)
class Run:
    """One process, that is one container, and everything it was asked to handle."""

    results: list[Result]
    import_millis: float  # importing the handler (the app with it), a cold start's init
    origins: dict[str, str]  # top-level module -> package|runtime|stdlib|builtin|elsewhere
    log: str  # stdout and stderr, which Lambda sends to CloudWatch


def stage_settings(stage: str) -> dict:
    """A stage's Zappa settings with ``extends`` resolved as Zappa does (key by key)."""
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    own = dict(settings[stage])
    parent = own.pop("extends", None)
    return {**stage_settings(parent), **own} if parent else own


def function_name(stage: str) -> str:
    """The Lambda function Zappa names for a stage (``<project_name>-<stage>``)."""
    return f"{stage_settings(stage)['project_name']}-{stage}"


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


def lambda_environment(*, function_name: str, region: str, memory_mb: int) -> dict:
    """The variables Lambda's python runtime sets (and nothing from this shell)."""
    from deploy.prebuild import PYTHON_VERSION

    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{PYTHON_VERSION}", "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region, "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
    }


def invoke(package: Path, events: list[dict], *, function_name: str, env: dict | None = None,
           region: str = "eu-central-1", memory_mb: int = 512, timeout_seconds: int = 60,
           handler: str = "handler.lambda_handler", python: str | None = None) -> Run:
    """Call ``handler`` with each event in one fresh process; see the module doc.

    ``package`` is the zip or a folder already unpacked; ``env`` is added to Lambda's
    own variables (the function's own, and the endpoint, credentials and secrets a test
    or benchmark needs); ``python`` defaults to the runtime's.
    """
    with tempfile.TemporaryDirectory(prefix="lambda-") as scratch:
        scratch = Path(scratch)
        task = package if package.is_dir() else unpack(package, scratch / "task")
        runtime = runtime_folder()
        environ = lambda_environment(function_name=function_name, region=region,
                                     memory_mb=memory_mb)
        environ.update({"LAMBDA_TASK_ROOT": str(task), "LAMBDA_RUNTIME_DIR": str(runtime),
                        "PYTHONPATH": os.pathsep.join([str(task), str(runtime)])})
        environ.update(env or {})
        spec = {"events": events, "function_name": function_name, "region": region,
                "memory_mb": memory_mb, "timeout_seconds": timeout_seconds,
                "handler": handler}
        result_file = scratch / "results.json"
        # -S: no site-packages at all; -B: /var/task is read-only, so no bytecode.
        done = subprocess.run(
            [python or runtime_python(), "-S", "-B", "-c", _DRIVER, str(result_file), str(task),
             str(runtime)],
            input=json.dumps(spec), cwd=task, env=environ, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout_seconds * max(1, len(events)) + 60)
        if not result_file.exists():
            raise RuntimeError(f"the Lambda process died (exit {done.returncode}):\n"
                               f"{done.stdout[-4000:]}")
        report = json.loads(result_file.read_text())
    return Run(results=[Result(**r) for r in report["results"]],
               import_millis=report["import_millis"], origins=report["origins"],
               log=done.stdout)
