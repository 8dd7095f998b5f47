"""Cold start of the packaged handler: a fresh process to the first answer of ``GET /``.

Both zips are built as the tracker's is: ``zappa package`` with the same settings, the
same lean deploy virtualenv (deploy/prebuild.py) and bytecode for the runtime's Python,
hash-based and unchecked; only the app differs. Each run is a new process of the
runtime's Python minor over the unpacked package, through deploy/lambda_runner.py, as
Lambda runs a new container, with INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT as the stage has
it (the app is built during init; the measure spans init and the first answer).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.harness import (
    APP_ENV,
    AWS_ENV,
    ROOT,
    Row,
    endpoints,
    interleaved_medians,
    ratio_row,
)

SECTION = "cold start"
HELLO = Path(__file__).resolve().parent / "hello"
HELLO_ZIP = ROOT / "dist" / "bench-hello.zip"
DEPLOY_VENV = ROOT / ".venv-deploy"
EVENT = ROOT / "tests" / "events" / "apigw_get_root.json"
# Settings that concern deploying the tracker, not how its zip is built.
NOT_FOR_HELLO = ("prebuild_script", "events", "attach_policy", "assume_policy",
                 "lambda_handler", "environment_variables", "aws_environment_variables")


def hello_package() -> Path:
    """Package the hello-world app with the tracker's dev settings, venv and bytecode."""
    from deploy import prebuild

    stamp = DEPLOY_VENV / ".built-from"
    sources = [stamp, *HELLO.glob("*.py"), ROOT / "zappa_settings.json", Path(__file__)]
    if HELLO_ZIP.exists() and HELLO_ZIP.stat().st_mtime > max(p.stat().st_mtime for p in sources):
        return HELLO_ZIP
    settings = json.loads((ROOT / "zappa_settings.json").read_text())["dev"]
    for name in NOT_FOR_HELLO:
        settings.pop(name, None)
    settings["project_name"] = "bench-hello"
    with tempfile.TemporaryDirectory(prefix="bench-hello-") as project:
        shutil.copy(HELLO / "app.py", project)
        tag = prebuild.PYTHON_VERSION.replace(".", "")
        prebuild.compile_bytecode(Path(project), extra=(
            prebuild.zappa_handler_source(),
            Path(project) / "__pycache__" / f"handler.cpython-{tag}.pyc"))
        Path(project, "zappa_settings.json").write_text(json.dumps({"dev": settings}))
        env = dict(os.environ, VIRTUAL_ENV=str(DEPLOY_VENV))
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "zappa"), "package", "dev",
                               "-o", str(HELLO_ZIP)], cwd=project, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"zappa package of the hello app failed:\n{done.stderr[-3000:]}")
    return HELLO_ZIP


def _first_answer(folder: Path, endpoint: str, event: dict, env: dict, handler: str) -> dict:
    """One new process: import the handler, answer GET /; its timings.

    ``total`` runs from just before the process is started to its answer, as a cold
    start does; the process's exit (freeing every module) is not part of it.
    """
    import time

    from deploy.lambda_runner import invoke

    spawned = time.time()
    run = invoke(folder, [event], function_name="bench-cold-start", handler=handler,
                 env=dict(AWS_ENV, **endpoints(), **env))
    [result] = run.results
    if result.error or result.value.get("statusCode") != 200:
        raise RuntimeError(f"GET / failed in {folder.name}: {result.error or result.value}"
                           f"\n{run.log[-2000:]}")
    return {"import": run.import_millis, "first": result.millis,
            "total": (result.at - spawned) * 1000}


def _store_secrets(endpoint: str, path: str) -> None:
    """The stage's SSM parameters in moto, as `python -m deploy.secret` leaves them."""
    import boto3

    from deploy import secret

    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    secret.ensure(ssm, path)


def run(smoke: bool, endpoint: str) -> list[Row]:
    from deploy.lambda_runner import ensure_package, stage_settings, unpack

    repeats = 1 if smoke else 11
    zips = {"tracker": ensure_package("dev"), "hello": hello_package()}
    settings = stage_settings("dev")
    stage_env = dict(settings["environment_variables"], **APP_ENV)
    # As deployed, the function reads its keys from SSM at init (SECRETS_PATH, which
    # Zappa's handler sets from the zip's settings). Without that read, the key given,
    # is measured on its own row: the app's own cost against Flask's.
    ssm_env = {k: v for k, v in stage_env.items() if k != "SECRET_KEY"}
    key_env = {k: v for k, v in stage_env.items() if k != "SECRETS_PATH"}
    hello_env = dict(APP_ENV, INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT="1")
    _store_secrets(endpoint, settings["environment_variables"]["SECRETS_PATH"])
    event = json.loads(EVENT.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        folders = {name: unpack(path, Path(scratch) / name) for name, path in zips.items()}
        folders["tracker-ssm"] = _without_secrets_path(folders["tracker"],
                                                       Path(scratch) / "tracker-ssm")
        setups = {"tracker": (folders["tracker"], ssm_env, settings["lambda_handler"]),
                  "tracker-ssm": (folders["tracker-ssm"], key_env, settings["lambda_handler"]),
                  "hello": (folders["hello"], hello_env, "handler.lambda_handler")}
        inside: dict[str, list[dict]] = {name: [] for name in setups}

        def start(name: str):
            folder, env, handler = setups[name]
            return lambda: inside[name].append(_first_answer(folder, endpoint, event, env,
                                                             handler))

        for name in setups:  # the disk cache warm for all, as on a busy Lambda host
            start(name)()
        interleaved_medians({name: start(name) for name in setups}, repeats)  # in turns
    split = {name: _median_split(runs[1:]) for name, runs in inside.items()}
    sizes = {name: path.stat().st_size / 1e6 for name, path in zips.items()}
    ms = {name: statistics.median(r["total"] for r in runs[1:])
          for name, runs in inside.items()}
    return [
        ratio_row(SECTION, "packaged handler, process start to first `GET /` answer, "
                  "vs hello-world Flask packaged alike (both with bytecode)",
                  ms["tracker"], ms["hello"], "ms", "<= 1.1",
                  f"median of {repeats} fresh processes each, the tracker reading its keys "
                  f"from SSM (moto) as deployed; inside them, init (the handler imported, "
                  f"the app built) + first answer: tracker {split['tracker']}, "
                  f"hello {split['hello']}"),
        ratio_row(SECTION, "the same, the tracker given its key (no SSM read)",
                  ms["tracker-ssm"], ms["hello"], "ms",
                  note="reported, no goal: the app's own cost, without the SSM client and "
                  f"call; init + first answer: {split['tracker-ssm']}"),
        Row(SECTION, "zip size, dist/dev.zip vs the hello-world zip", sizes["tracker"], "MB",
            baseline=sizes["hello"], ratio=sizes["tracker"] - sizes["hello"],
            goal="<= 0.3",
            note=f"ratio column: MB over the hello-world zip ({sizes['hello']:.2f} MB, same "
                 f"venv and bytecode)"),
    ]


def _without_secrets_path(folder: Path, into: Path) -> Path:
    """A copy of an unpacked package whose settings name no SSM path."""
    shutil.copytree(folder, into, symlinks=True)
    settings = into / "zappa_settings.py"
    text = re.sub(r"'SECRETS_PATH': '[^']*', ?", "", settings.read_text())
    if "SECRETS_PATH" in text:
        raise RuntimeError("zappa_settings.py: SECRETS_PATH not where expected")
    settings.write_text(text)
    return into


def _median_split(runs: list[dict]) -> str:
    return " + ".join(f"{statistics.median(r[k] for r in runs):.0f}"
                      for k in ("import", "first")) + " ms"
