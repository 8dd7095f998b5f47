"""CloudWatch metrics as Embedded Metric Format lines: one JSON line on stdout, no AWS call.

Lambda hands stdout to CloudWatch Logs, which turns every line holding an ``_aws``
object into metric data points. deploy/operations.yaml alarms on them, so the names
here and there must match (tests/test_operations.py checks both).

Written by hand rather than with Powertools' ``Metrics``: its import alone costs
tens of milliseconds of cold start (README, Benchmarks), for a format this small.
"""

from __future__ import annotations

import json
import os
import sys
import time

NAMESPACE = "esim-tracker"
# The job's counts and flags that become metrics, and their metric names: each one a key
# ``followups.run`` returns (tests/test_operations.py drives the job until every one of
# them has been non-zero). ``run`` counts more (skipped, deferred …) that nobody reads.
JOB_COUNTS = {"sent": "JobSent", "failed": "JobFailed", "errors": "JobErrors",
              "retry": "JobRetried", "suppressed": "JobSuppressed",
              "quarantined": "JobQuarantined", "paused": "JobPaused",
              "throttled": "JobThrottled", "stalled": "JobStalled",
              "stopped_early": "JobStoppedEarly"}
RUN_COMPLETED = "JobRunCompleted"
# Each form POST: stored and redirected, or refused.
FORM_ACCEPTED, FORM_REJECTED = "FormAccepted", "FormRejected"
# An email sent while the traveller waits (the receipt, an escalation) that SES refused
# for the sender or the account (left due for the job), or refused for good.
WEB_MAIL_PAUSED, WEB_MAIL_FAILED = "WebMailPaused", "WebMailFailed"
# SES feedback records applied (addresses suppressed), and dropped: unreadable, or about
# mail from another sender or account (handlers/ses_events.py).
FEEDBACK_SUPPRESSED, FEEDBACK_DROPPED = "FeedbackSuppressed", "FeedbackDropped"
# Every metric name the code can emit; deploy/operations.yaml alarms only on these.
EMITTED = frozenset({*JOB_COUNTS.values(), RUN_COMPLETED, FORM_ACCEPTED, FORM_REJECTED,
                     WEB_MAIL_PAUSED, WEB_MAIL_FAILED, FEEDBACK_SUPPRESSED,
                     FEEDBACK_DROPPED})


def stage() -> str:
    """The stage the metrics belong to: Zappa sets STAGE; elsewhere ``local``."""
    return os.environ.get("STAGE") or "local"


def line(values: dict[str, float], *, now_millis: int, dimensions: dict[str, str]) -> str:
    """One EMF line: every value a Count under one dimension set."""
    return json.dumps({
        "_aws": {"Timestamp": now_millis, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [sorted(dimensions)],
            "Metrics": [{"Name": name, "Unit": "Count"} for name in values]}]},
        **dimensions, **values}, separators=(",", ":"))


def emit(values: dict[str, float], out=None) -> None:
    """Write one EMF line of ``values`` for this stage, on Lambda (where CloudWatch reads
    stdout; the sandbox's and the tests' output stays quiet)."""
    if values and "AWS_LAMBDA_FUNCTION_NAME" in os.environ:
        text = line(values, now_millis=int(time.time() * 1000), dimensions={"Stage": stage()})
        print(text, file=out or sys.stdout, flush=True)


def job_values(result: dict) -> dict[str, float]:
    """The metrics of one job run, from what ``followups.run`` returned (every key of
    JOB_COUNTS: a missing one is a bug, not a zero)."""
    values = {name: float(result[key]) for key, name in JOB_COUNTS.items()}
    values[RUN_COMPLETED] = 1.0
    return values


def feedback_values(counts: dict) -> dict[str, float]:
    """The metrics of one SNS delivery of SES feedback, from ``feedback.handle_sns``."""
    return {FEEDBACK_SUPPRESSED: float(counts.get("suppressed", 0)),
            FEEDBACK_DROPPED: float(counts.get("ignored", 0) + counts.get("foreign", 0))}
