"""Where a cold start's CPU time goes, step by step: the packaged tracker and hello-world.

    python -m bench.init_profile [--repeats 7]

Each step is the process CPU time it adds (median of the repeats), in a fresh Python
3.13 over the unpacked zip with the variables Lambda gives the function, as
deploy/lambda_runner.py starts it. The steps import what Zappa's handler and app.py
import, in their order, so each line is what that step adds to the ones above; the
last is the first `GET /` answer (the tracker's keys set directly: reading them is
timed by the bench). CPU time, not wall time, so that other work on the machine
sways it less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.cold_start import EVENT, hello_package, hello_settings

_STEPS = r"""
import json, os, sys, time
cpu = time.process_time
steps = [("interpreter start", cpu())]
def step(label):
    steps.append((label, cpu()))
import handler
step("Zappa's handler (boto3, Werkzeug, asyncio)")
import flask
step("Flask")
APP = sys.argv[1] == "tracker"
if APP:
    import flask_babel
    step("Flask-Babel (babel.support, babel.dates, babel.numbers, babel.localtime)")
    import flask_wtf.csrf, wtforms
    step("Flask-WTF and WTForms")
    import operators
    step("operators: the three files (parsed by the prebuild), five frozen dataclasses")
    import email.policy
    step("email.policy (the receipt's MIME)")
    from tracker import config, i18n, logs, mail, metrics, policy, security, stats, suppression
    from tracker.emails import compose
    from tracker.followups import Postman
    from tracker.store import Store
    from tracker import web, cli
    step("the tracker's modules (about 18 frozen dataclasses)")
    os.environ.update(json.loads(sys.argv[2]))
import app
step("create_app (Babel, the blueprint's URL rules, Jinja)" if APP else "the hello app")
if APP:
    app.app.config["SECRET_KEY"] = "profile-only"
    app.app.extensions["stored_secrets_loaded"] = True
zappa = handler.LambdaHandler()
event = json.load(open(sys.argv[3]))
answer = zappa.handler(event, None)
assert answer["statusCode"] == 200, answer
step("first GET / answer")
print(json.dumps([(label, (t - steps[i - 1][1]) * 1000 if i else t * 1000)
                  for i, (label, t) in enumerate(steps)]))
"""


def profile(folder: Path, function, app: str, stage_variables: dict, repeats: int) -> list:
    """(step, median CPU ms) for one unpacked package."""
    from dataclasses import replace

    from deploy.lambda_runner import lambda_environment, runtime_folder, runtime_python

    # The steps build the app themselves, in order: no instance on import.
    quiet = replace(function, environment={
        k: v for k, v in function.environment.items()
        if k != "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"})
    environ = lambda_environment(quiet, task=folder, runtime=runtime_folder())
    environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing here calls AWS
    runs = []
    for _ in range(repeats):
        done = subprocess.run([runtime_python(), "-S", "-B", "-c", _STEPS, app,
                               json.dumps(stage_variables), str(EVENT)],
                              cwd=folder, env=environ, capture_output=True, text=True,
                              check=True)
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    return [(label, statistics.median(run[i][1] for run in runs))
            for i, (label, _) in enumerate(runs[0])]


def main(argv=None) -> int:
    from deploy.lambda_runner import ensure_package, function_of, stage_settings, unpack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        tracker = profile(unpack(ensure_package("dev"), Path(scratch) / "tracker"),
                          function_of("dev"), "tracker",
                          stage_settings("dev")["environment_variables"], args.repeats)
        hello = profile(unpack(hello_package(), Path(scratch) / "hello"),
                        function_of("dev", hello_settings()), "hello", {}, args.repeats)
    shared = dict(hello)
    print("| step | tracker, CPU ms | hello-world, CPU ms |\n|---|---:|---:|")
    for label, ms in tracker:
        other = shared.get(label, shared.get("the hello app") if label.startswith("create_app")
                           else None)
        print(f"| {label} | {ms:.1f} | {'' if other is None else f'{other:.1f}'} |")
    print(f"| **total** | **{sum(ms for _, ms in tracker):.0f}** | "
          f"**{sum(ms for _, ms in hello):.0f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
