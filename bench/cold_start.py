"""Cold start of the packaged handler: a fresh process to the first answer of ``GET /``.

Both zips come from ``zappa package`` with the same settings and the same lean deploy
virtualenv (deploy/prebuild.py); only the app differs. Each run is a new process over
the unzipped package, through deploy/lambda_runner.py, as Lambda runs a new container.
"""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.harness import APP_ENV, AWS_ENV, ROOT, Row, interleaved_medians, ratio_row

SECTION = "cold start"
HELLO = Path(__file__).resolve().parent / "hello"
HELLO_ZIP = ROOT / "dist" / "bench-hello.zip"
DEPLOY_VENV = ROOT / ".venv-deploy"
EVENT = ROOT / "tests" / "events" / "apigw_get_root.json"
# Settings that concern deploying the tracker, not how its zip is built.
NOT_FOR_HELLO = ("prebuild_script", "events", "attach_policy", "dead_letter_arn",
                 "environment_variables", "aws_environment_variables")


def hello_package() -> Path:
    """Package the hello-world app with the tracker's dev settings and deploy venv."""
    stamp = DEPLOY_VENV / ".built-from"
    sources = [stamp, *HELLO.glob("*.py"), ROOT / "zappa_settings.json"]
    if HELLO_ZIP.exists() and HELLO_ZIP.stat().st_mtime > max(p.stat().st_mtime for p in sources):
        return HELLO_ZIP
    settings = json.loads((ROOT / "zappa_settings.json").read_text())["dev"]
    for name in NOT_FOR_HELLO:
        settings.pop(name, None)
    settings["project_name"] = "bench-hello"
    with tempfile.TemporaryDirectory(prefix="bench-hello-") as project:
        shutil.copy(HELLO / "app.py", project)
        Path(project, "zappa_settings.json").write_text(json.dumps({"dev": settings}))
        env = dict(os.environ, VIRTUAL_ENV=str(DEPLOY_VENV))
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "zappa"), "package", "dev",
                               "-o", str(HELLO_ZIP)], cwd=project, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"zappa package of the hello app failed:\n{done.stderr[-3000:]}")
    return HELLO_ZIP


def _first_answer(folder: Path, endpoint: str, event: dict) -> dict:
    """One new process: import the handler, answer GET /; its timings."""
    from deploy.lambda_runner import invoke

    run = invoke(folder, [event], function_name="bench-cold-start",
                 env=dict(AWS_ENV, AWS_ENDPOINT_URL=endpoint, **APP_ENV))
    [result] = run.results
    if result.error or result.value.get("statusCode") != 200:
        raise RuntimeError(f"GET / failed in {folder.name}: {result.error or result.value}"
                           f"\n{run.log[-2000:]}")
    return {"import": run.import_millis, "first": result.millis}


def _with_bytecode(folder: Path, into: Path) -> Path:
    """A copy of an unpacked package with every module compiled, as a zip could carry."""
    shutil.copytree(folder, into, symlinks=True)
    # Checked against a hash of the source: valid whatever mtimes unzipping gives.
    compileall.compile_dir(into, quiet=2,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    return into


def run(smoke: bool, endpoint: str) -> list[Row]:
    from deploy.lambda_runner import ensure_package, unpack

    repeats = 1 if smoke else 11
    zips = {"tracker": ensure_package("dev"), "hello": hello_package()}
    event = json.loads(EVENT.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        folders = {name: unpack(path, Path(scratch) / name) for name, path in zips.items()}
        folders.update({f"{name}+pyc": _with_bytecode(folders[name], Path(scratch) / f"{name}+pyc")
                        for name in zips})
        inside: dict[str, list[dict]] = {name: [] for name in folders}

        def start(name: str):
            return lambda: inside[name].append(_first_answer(folders[name], endpoint, event))

        for name in folders:  # the disk cache warm for all, as on a busy Lambda host
            start(name)()
        medians = interleaved_medians({name: start(name) for name in folders}, repeats)
    split = {name: _median_split(runs[1:]) for name, runs in inside.items()}
    sizes = {name: path.stat().st_size / 1e6 for name, path in zips.items()}
    ms = {name: seconds * 1000 for name, seconds in medians.items()}
    return [
        ratio_row(SECTION, "packaged handler, process start to first `GET /` answer, "
                  "vs hello-world Flask packaged alike", ms["tracker"], ms["hello"], "ms",
                  "<= 1.3",
                  f"median of {repeats} fresh processes each; inside them, import handler + "
                  f"first answer: tracker {split['tracker']}, hello {split['hello']}"),
        ratio_row(SECTION, "the same, both packages with their modules compiled to .pyc",
                  ms["tracker+pyc"], ms["hello+pyc"], "ms",
                  note="reported, no goal: what shipping bytecode in the zip would give (it "
                  "ships none today); "
                  f"import + first answer: tracker {split['tracker+pyc']}, "
                  f"hello {split['hello+pyc']}"),
        Row(SECTION, "zip size, dist/dev.zip", sizes["tracker"], "MB", goal="<= 5",
            note=f"the goal is issue 3's; the hello-world zip, same venv: "
                 f"{sizes['hello']:.2f} MB"),
    ]


def _median_split(runs: list[dict]) -> str:
    return " + ".join(f"{statistics.median(r[k] for r in runs):.0f}"
                      for k in ("import", "first")) + " ms"

