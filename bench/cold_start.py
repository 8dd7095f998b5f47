"""Cold start of the packaged handler, as Lambda starts it: a new process to the first
answer of ``GET /``.

Both zips are built as the tracker's is: ``zappa package`` with the same settings, the
same lean deploy virtualenv (deploy/prebuild.py) and bytecode for the runtime's Python,
hash-based and unchecked; only the app differs. Each run is a new process of the
runtime's Python minor over the unpacked package, through deploy/lambda_runner.py, as
Lambda runs a new container: the handler the settings name, only the variables Lambda
gives the function (its aws_environment_variables, which hold
INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT, so the app is built during init; Lambda's own),
the runtime's boto3 with its bytecode. The tracker reads its keys at its first
invocation through the Parameters and Secrets extension its layer adds (a stand-in on
moto's SSM); a second row drops the layer, so the keys come through boto3.

Lambda's init runs at full CPU, while a 512 MB function's handler gets 512/1769 of a
vCPU; a row weighs each part so (``lambda_estimate``), and one builds the app in the
first request instead, as the function did when the variable sat in the zip's settings.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.harness import (
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
# Settings that concern deploying the tracker, not how its zip is built or how Lambda
# starts a function: the hello-world app keeps the rest (its real Environment too).
NOT_FOR_HELLO = ("prebuild_script", "events", "attach_policy", "assume_policy",
                 "lambda_handler", "environment_variables", "layers")
# A vCPU at 1,769 MB (docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
FULL_VCPU_MB = 1769


def hello_settings() -> dict:
    """The dev stage's settings for the hello-world app (Zappa's default handler)."""
    settings = json.loads((ROOT / "zappa_settings.json").read_text())["dev"]
    for name in NOT_FOR_HELLO:
        settings.pop(name, None)
    settings["project_name"] = "bench-hello"
    return settings


def hello_package() -> Path:
    """Package the hello-world app with the tracker's dev settings, venv and bytecode."""
    from deploy import prebuild

    stamp = DEPLOY_VENV / ".built-from"
    sources = [stamp, *HELLO.glob("*.py"), ROOT / "zappa_settings.json", Path(__file__)]
    if HELLO_ZIP.exists() and HELLO_ZIP.stat().st_mtime > max(p.stat().st_mtime for p in sources):
        return HELLO_ZIP
    with tempfile.TemporaryDirectory(prefix="bench-hello-") as project:
        shutil.copy(HELLO / "app.py", project)
        tag = prebuild.PYTHON_VERSION.replace(".", "")
        prebuild.compile_bytecode(Path(project), extra=(
            prebuild.zappa_handler_source(),
            Path(project) / "__pycache__" / f"handler.cpython-{tag}.pyc"))
        Path(project, "zappa_settings.json").write_text(json.dumps({"dev": hello_settings()}))
        env = dict(os.environ, VIRTUAL_ENV=str(DEPLOY_VENV))
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "zappa"), "package", "dev",
                               "-o", str(HELLO_ZIP)], cwd=project, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"zappa package of the hello app failed:\n{done.stderr[-3000:]}")
    return HELLO_ZIP


def _first_answer(folder: Path, function, event: dict) -> dict:
    """One new process: init (the handler imported, the app built), then GET /.

    ``total`` runs from just before the process is started to its answer, as a cold
    start does; the process's exit (freeing every module) is not part of it.
    """
    from deploy.lambda_runner import invoke

    run = invoke(folder, [event], function=function, harness=endpoints())
    [result] = run.results
    if result.error or result.value.get("statusCode") != 200:
        raise RuntimeError(f"GET / failed in {folder.name}: {result.error or result.value}"
                           f"\n{run.log[-2000:]}")
    return {"init": run.import_millis, "first": result.millis, "first_cpu": result.cpu_millis,
            "total": (result.at - run.spawned_at) * 1000, "cpu": result.process_cpu_millis}


def lambda_estimate(run: dict, memory_mb: int) -> float:
    """The run's milliseconds were its handler's CPU time slowed to ``memory_mb``'s share.

    Lambda gives the init phase full CPU and a handler memory_mb/1,769 of a vCPU, so
    the first answer's CPU time takes 1,769/memory_mb times as long there; its waits
    (the secrets' round trips) do not. An estimate: the machine is not Graviton.
    """
    slowdown = max(1.0, FULL_VCPU_MB / memory_mb)
    return run["total"] + run["first_cpu"] * (slowdown - 1)


def _store_secrets(endpoint: str, path: str) -> None:
    """The stage's SSM parameters in moto, as `python -m deploy.secret` leaves them."""
    import boto3

    from deploy import secret

    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    secret.ensure(ssm, path)


def run(smoke: bool, endpoint: str) -> list[Row]:
    from deploy.lambda_runner import ensure_package, function_of, stage_settings, unpack

    repeats = 1 if smoke else int(os.environ.get("BENCH_COLD_REPEATS", "11"))
    zips = {"tracker": ensure_package("dev"), "hello": hello_package()}
    tracker = function_of("dev")
    hello = function_of("dev", hello_settings())
    _store_secrets(endpoint, stage_settings("dev")["environment_variables"]["SECRETS_PATH"])
    event = json.loads(EVENT.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        folders = {name: unpack(path, Path(scratch) / name) for name, path in zips.items()}
        lazy = {k: v for k, v in tracker.environment.items()
                if k != "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"}
        setups = {"tracker": (folders["tracker"], tracker),
                  "tracker-boto3": (folders["tracker"], replace(tracker, layers=())),
                  "tracker-lazy": (folders["tracker"], replace(tracker, environment=lazy)),
                  "hello": (folders["hello"], hello)}
        inside: dict[str, list[dict]] = {name: [] for name in setups}

        def start(name: str):
            folder, function = setups[name]
            return lambda: inside[name].append(_first_answer(folder, function, event))

        for name in setups:  # the disk cache warm for all, as on a busy Lambda host
            start(name)()
        interleaved_medians({name: start(name) for name in setups}, repeats)  # in turns
    runs = {name: runs[1:] for name, runs in inside.items()}
    ms = {name: statistics.median(r["total"] for r in rs) for name, rs in runs.items()}
    on_lambda = {name: statistics.median(lambda_estimate(r, setups[name][1].memory_mb)
                                         for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in runs.items()}
    split = {name: _median_split(rs) for name, rs in runs.items()}
    spread = {name: _spread(rs) for name, rs in runs.items()}
    sizes = {name: path.stat().st_size / 1e6 for name, path in zips.items()}
    return [
        ratio_row(SECTION, "packaged handler, process start to first `GET /` answer, "
                  "vs hello-world Flask packaged alike (both with bytecode, only "
                  "Lambda's variables)", ms["tracker"], ms["hello"], "ms", "<= 1.1",
                  f"median of {repeats} fresh processes each (tracker {spread['tracker']}, "
                  f"hello {spread['hello']}); their CPU time to the answer, which other "
                  f"work on the machine sways less: {cpu['tracker']:.0f} against "
                  f"{cpu['hello']:.0f} ms ({cpu['tracker'] / cpu['hello']:.2f}); init "
                  f"(handler imported, app built) + first "
                  f"answer: tracker {split['tracker']}, hello {split['hello']}; the "
                  f"tracker's keys through the Parameters and Secrets extension (a "
                  f"stand-in on moto's SSM) in its first invocation"),
        ratio_row(SECTION, "the same, the tracker without the extension's layer (keys "
                  "from SSM through boto3)", ms["tracker-boto3"], ms["hello"], "ms",
                  note=f"reported, no goal: init + first answer {split['tracker-boto3']}"),
        ratio_row(SECTION, "the same, the tracker's app built in its first request (no "
                  "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT in its Environment)",
                  ms["tracker-lazy"], ms["hello"], "ms",
                  note=f"reported, no goal: init + first answer {split['tracker-lazy']}; "
                  f"as on Lambda at {tracker.memory_mb} MB (estimate below) "
                  f"{on_lambda['tracker-lazy']:.0f} ms, against {on_lambda['tracker']:.0f} "
                  f"ms built in init"),
        ratio_row(SECTION, f"the same as on Lambda at {tracker.memory_mb} MB (estimate: "
                  f"init at full CPU, the first answer's CPU time at "
                  f"{tracker.memory_mb}/{FULL_VCPU_MB} of a vCPU)", on_lambda["tracker"],
                  on_lambda["hello"], "ms",
                  note="reported, no goal: bench/cold_start.py lambda_estimate"),
        Row(SECTION, "zip size, dist/dev.zip vs the hello-world zip", sizes["tracker"], "MB",
            baseline=sizes["hello"], ratio=sizes["tracker"] - sizes["hello"],
            goal="<= 0.3",
            note=f"ratio column: MB over the hello-world zip ({sizes['hello']:.2f} MB, same "
                 f"venv and bytecode)"),
    ]


def _median_split(runs: list[dict]) -> str:
    return " + ".join(f"{statistics.median(r[k] for r in runs):.0f}"
                      for k in ("init", "first")) + " ms"


def _spread(runs: list[dict]) -> str:
    totals = sorted(r["total"] for r in runs)
    return f"{totals[0]:.0f}–{totals[-1]:.0f} ms"
