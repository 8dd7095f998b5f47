"""Tell whether a deployed stage is healthy: one line per check, pass or what to do.

    python -m deploy.doctor prod                      # make doctor STAGE=prod
    python -m deploy.doctor smoke1a2b -s /tmp/zappa_settings.json

Reads the live stage with the maintainer's credentials (nothing is changed) and prints
one line per check: ``ok``, ``warn`` (works, but will not for long or not well), or
``FAIL`` with the command that fixes it. Exit status 0 when nothing failed, 1 when
something did, 2 for a stage the settings do not hold. Run it after the first deploy
and after every ``zappa update`` (README, Deploy). No line holds personal data: the
alarm topic's subscribers are counted, never named, and no secret value is read out.

What it checks is what no emulator enforces and what the audit of 2026-12-04 saw break
on real accounts: the job's rule, the SES feedback chain, the function's resource
policy and real environment, its dead-letter destination, its flood limits, SES's
verdicts on the sender and the account, the alarm subscription, the public pages, the
table's safety nets, the secrets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from deploy.doctor import (
    flood,
    function,
    pages,
    permissions,
    schedule,
    secret_store,
    sending,
    table,
    topics,
)
from deploy.doctor.report import FAIL, Finding, fail
from deploy.doctor.stage import SETTINGS, Live, Missing, Stage, UnknownStage, load

# In the order a maintainer fixes things: the stack and function first, then what hangs
# off them. Each check has one subject and returns one verdict.
CHECKS = (
    ("operations stack", function.operations_stack),
    ("function settings", function.function_settings),
    ("function environment", function.function_environment),
    ("schedule rule", schedule.schedule_rule),
    ("schedule target", schedule.schedule_target),
    ("schedule permission", permissions.schedule_permission),
    ("feedback subscription", topics.feedback_subscription),
    ("feedback permission", permissions.feedback_permission),
    ("resource policy size", permissions.policy_size),
    ("old Zappa statements", permissions.stale_permissions),
    ("dead letters", function.dead_letters),
    ("reserved concurrency", flood.reserved_concurrency),
    ("API throttle", flood.api_throttle),
    ("sender identity", sending.sender_identity),
    ("DKIM", sending.dkim),
    ("SES account", sending.ses_account),
    ("sending rate", sending.sending_rate),
    ("configuration set", sending.configuration_set),
    ("feedback destination", sending.feedback_destination),
    ("alarm subscription", topics.alarm_subscription),
    ("GET /", pages.front_page),
    ("GET /stats", pages.stats_page),
    ("table TTL", table.table_ttl),
    ("table recovery", table.table_recovery),
    ("table protection", table.table_protection),
    ("secrets", secret_store.secrets),
)


def examine(stage: Stage, live: Live) -> list[Finding]:
    """Run every check; one that cannot read what it needs fails with the reason."""
    findings = []
    for subject, check in CHECKS:
        try:
            verdict = check(stage, live)
        except Missing as gap:
            verdict = fail(f"not checked: {gap}")
        except ClientError as error:
            told = error.response.get("Error", {})
            verdict = fail(f"could not read it: {told.get('Code')}: "
                           f"{_first_line(told.get('Message'))} (are these credentials "
                           f"allowed to read it?)")
        except BotoCoreError as error:
            verdict = fail(f"could not read it: {_first_line(error)}")
        findings.append(Finding(subject, verdict.status, verdict.detail))
    return findings


def _first_line(message) -> str:
    return (str(message or "").strip().splitlines() or [""])[0][:200]


def main(argv: list[str] | None = None, *, session=None) -> int:
    """Print one line per check; the exit status says whether any failed."""
    parser = argparse.ArgumentParser(prog="python -m deploy.doctor",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", help="a stage of the settings file, e.g. prod")
    parser.add_argument("-s", "--settings", type=Path, default=SETTINGS,
                        help="the Zappa settings file (default: zappa_settings.json)")
    args = parser.parse_args(argv)
    try:
        stage = load(args.stage, args.settings)
    except UnknownStage as error:
        print(f"doctor: {error}", file=sys.stderr)
        return 2
    findings = examine(stage, Live(stage, session))
    for finding in findings:
        print(finding.line())
    failed = sum(f.status == FAIL for f in findings)
    print(f"{stage.function}: {len(findings) - failed} of {len(findings)} checks passed"
          + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
