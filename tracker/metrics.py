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
# The job's counts that become metrics, and their metric names. ``run`` counts more
# (skipped, deferred …) that nobody alarms on.
# A count or a flag missing from the result (an older job) is a 0.
JOB_COUNTS = {"sent": "JobSent", "failed": "JobFailed", "errors": "JobErrors",
              "retry": "JobRetried", "suppressed": "JobSuppressed",
              "quarantined": "JobQuarantined", "paused": "JobPaused",
              "throttled": "JobThrottled", "stopped_early": "JobStoppedEarly"}
RUN_COMPLETED = "JobRunCompleted"
FORM_ACCEPTED, FORM_REJECTED = "FormAccepted", "FormRejected"


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
    """The metrics of one job run, from what ``followups.run`` returned."""
    values = {name: float(result.get(key) or 0) for key, name in JOB_COUNTS.items()}
    values[RUN_COMPLETED] = 1.0
    return values
