"""One real-AWS run per release: deploy a throwaway stage, prove it end to end, remove it.

    make smoke                # python -m deploy.smoke, with your AWS credentials

The only check of what no emulator enforces (IAM, trust policies, SES's verdicts, SNS
delivery into Lambda, Lambda's real environment, API Gateway). In order:

1. a stage ``smoke<6 hex>``: a settings file extending dev, and dev's policy renamed to
   its resources, in a temporary folder (deploy/smoke/throwaway.py);
2. its secrets in SSM (deploy/secret.py), its operations stack (deploy/operations.yaml);
3. ``zappa deploy``, then ``zappa update`` with the API's URL as BASE_URL, then the
   stack again with FunctionDeployed=yes and the API stage's throttle: the README's
   first deploy (``make deploy``), plus an update;
4. the doctor: every check must pass but the SES sandbox, which the simulator allows;
5. the form, through the API, for SES's mailbox simulator: success@, bounce@, complaint@;
6. the bounce and the complaint come back (SES, the configuration set, SNS, the
   function) and suppress their addresses in the table;
7. ``zappa invoke handlers.followup.run``: success@ gets its first check, the two
   suppressed requests nothing;
8. always, even after a failure or Ctrl-C: everything it made is removed, then looked
   for again; anything left is listed with the command that removes it.

Exit status 0 when every step passed and nothing is left. Takes about 10 minutes and a
cent or two (README, Deploy: make smoke).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import boto3

from deploy import doctor, limits, secret
from deploy.doctor.stage import JOB, Live, Stage, load
from deploy.smoke import teardown, throwaway, traveller
from deploy.smoke.platform import Aws, SmokeFailed
from tracker import policy, suppression
from tracker.store import Store

ADDRESSES = (traveller.SUCCESS, traveller.BOUNCE, traveller.COMPLAINT)


def tolerated(finding: doctor.Finding) -> bool:
    """The doctor's one failure a throwaway stage may have: a sandbox account (the
    simulator's addresses need no production access)."""
    return finding.subject == "SES account" and "sandbox" in finding.detail


@contextlib.contextmanager
def step(say: Callable[[str], None], what: str):
    say(f"smoke: {what} …")
    started = time.monotonic()
    yield
    say(f"smoke: {what}: done in {time.monotonic() - started:.0f} s")


def run(platform, session: boto3.Session, *, say: Callable[[str], None] = print,
        feedback_seconds: float = 300, poll_seconds: float = 10,
        settings: Path = throwaway.ROOT / "zappa_settings.json") -> bool:
    """Deploy, prove and remove a throwaway stage; True when all passed and nothing is left."""
    with tempfile.TemporaryDirectory(prefix="esim-smoke-") as folder:
        made = throwaway.create(Path(folder), source=settings)
        say(f"smoke: stage {made.name} (settings {made.settings_file})")
        passed = False
        try:
            _prove(platform, session, made, say, feedback_seconds, poll_seconds)
            passed = True
        except Exception as failure:  # every failure ends in the teardown below
            say(f"smoke: FAILED: {type(failure).__name__}: {failure}")
        finally:
            stage = load(made.name, made.settings_file)
            with step(say, "removing everything it made"):
                by_hand = teardown.remove(platform, stage, session, say)
            left = teardown.leftovers(stage, session)
            for thing in left:
                say(f"smoke: LEFT BEHIND: {thing}")
            for command in by_hand:
                say(f"smoke: finish by hand: {command}")
        clean = not left and not by_hand
        say(f"smoke: {'passed' if passed else 'FAILED'}; "
            f"{'nothing left behind' if clean else 'something left behind (above)'}")
        return passed and clean


def _prove(platform, session, made, say, feedback_seconds, poll_seconds) -> None:
    stage = load(made.name, made.settings_file)
    settings = ("-s", str(made.settings_file))
    with step(say, f"secrets under {stage.env['SECRETS_PATH']}"):
        secret.ensure(session.client("ssm"), stage.env["SECRETS_PATH"])
    with step(say, f"operations stack {stage.stack}"):
        platform.deploy_stack(stage, "no")
    with step(say, f"zappa deploy {stage.name}"):
        platform.zappa("deploy", stage.name, *settings)
    with step(say, f"zappa update {stage.name} with its API's URL as BASE_URL"):
        throwaway.set_base_url(made, platform.api_url(stage))
        platform.zappa("update", stage.name, *settings)
    stage = load(made.name, made.settings_file)
    with step(say, f"operations stack {stage.stack}, FunctionDeployed=yes"):
        platform.deploy_stack(stage, "yes")
    with step(say, "the API stage's throttle, as make deploy sets it"):
        apigateway = session.client("apigateway", region_name=stage.region)
        limits.apply(apigateway, limits.rest_api_id(apigateway, stage.function), stage.name,
                     limits.for_stage(stage.name, stage.settings))
    with step(say, "the doctor"):
        _doctor(session, stage, say)
    with step(say, "the form, for SES's mailbox simulator"):
        for address in ADDRESSES:
            traveller.submit(stage.env["BASE_URL"], address, now=datetime.now(UTC))
    store = _store(session, stage)
    with step(say, "the bounce and the complaint come back and suppress their addresses"):
        platform.ses_answers(stage, [traveller.BOUNCE, traveller.COMPLAINT])
        _await_suppression(store, feedback_seconds, poll_seconds)
    with step(say, f"zappa invoke {stage.name} {JOB}"):
        platform.zappa("invoke", stage.name, JOB, *settings)
    with step(say, "the job mailed success@ its first check, the suppressed nothing"):
        _check_outcome(store)


def _doctor(session: boto3.Session, stage: Stage, say) -> None:
    findings = doctor.examine(stage, Live(stage, session))
    for finding in findings:
        say(f"smoke:   {finding.line()}"
            + (" (tolerated: the simulator is reachable from the sandbox)"
               if finding.status == doctor.FAIL and tolerated(finding) else ""))
    failed = [f.subject for f in findings if f.status == doctor.FAIL and not tolerated(f)]
    if failed:
        raise SmokeFailed(f"the doctor failed {', '.join(failed)}")


def _store(session: boto3.Session, stage: Stage) -> Store:
    """The stage's table, read as the app reads it (the pepper keys the suppressions)."""
    pepper = session.client("ssm").get_parameter(
        Name=f"{stage.env['SECRETS_PATH'].rstrip('/')}/ADDRESS_PEPPER",
        WithDecryption=True)["Parameter"]["Value"]
    return Store(session.resource("dynamodb").Table(stage.env["TABLE_NAME"]),
                 address_key=functools.partial(suppression.address_key, pepper))


def _await_suppression(store: Store, seconds: float, poll: float) -> None:
    wanted = {traveller.BOUNCE: "bounce", traveller.COMPLAINT: "complaint"}
    deadline = time.monotonic() + seconds
    while True:
        found = {address: store.suppression(address) for address in wanted}
        if found == wanted:
            break
        if time.monotonic() > deadline:
            raise SmokeFailed(f"after {seconds:.0f} s, suppressed: {found} (SES → "
                              f"configuration set → topic → function broke somewhere; "
                              f"zappa tail the stage's logs, or the doctor's lines)")
        time.sleep(poll)
    if store.suppression(traveller.SUCCESS):
        raise SmokeFailed("success@ was suppressed too")


def _check_outcome(store: Store) -> None:
    def request(address: str):
        ids = store.requests_to(store.address_key(address))
        if len(ids) != 1:
            raise SmokeFailed(f"{len(ids)} requests stored for {address}, not 1")
        return store.get(ids[0])

    sent_check = f"sent:{policy.CHECK}"
    success = request(traveller.SUCCESS)
    history = [event.what for event in success.history]
    if f"sent:{policy.RECEIPT}" not in history or sent_check not in history:
        raise SmokeFailed(f"success@'s timeline is {history}: no receipt or no first check")
    for address, status in ((traveller.BOUNCE, policy.FAILED),
                            (traveller.COMPLAINT, policy.STOPPED)):
        suppressed = request(address)
        if suppressed.progress.status != status:
            raise SmokeFailed(f"{address} is {suppressed.progress.status}, not {status}")
        if sent_check in [event.what for event in suppressed.history]:
            raise SmokeFailed(f"the job mailed {address} after its suppression")


def main(argv: list[str] | None = None) -> int:
    """Run it against real AWS with the maintainer's credentials."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        print("smoke: AWS_ENDPOINT_URL is set; the smoke run is for real AWS only "
              "(unset it)", file=sys.stderr)
        return 2
    region = load(throwaway.PARENT).region
    session = boto3.Session(region_name=region)
    return 0 if run(Aws(session), session) else 1
