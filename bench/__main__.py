"""``make bench``: run every benchmark, print one table, write bench/results.json.

    python -m bench [--smoke] [--only SECTION ...] [--out PATH]

Every measure is held against a baseline measured in the same run (machines are noisy).
DynamoDB is AWS's own emulator, DynamoDB Local (``make dynamodb-local``); SES and SSM are
moto's server.
``--smoke`` runs tiny sizes, only to show that every row is still produced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import cold_import, cold_start, job, page_weight, request_cost
from bench.harness import ROOT, Row, aws_pointed_at, dynamodb_local, moto_server

RESULTS = ROOT / "bench" / "results.json"
# Each runner takes (smoke, moto's endpoint) and returns its rows; DynamoDB is at
# AWS_ENDPOINT_URL_DYNAMODB.
SECTIONS = {
    "cold-import": lambda smoke, endpoint: cold_import.run(smoke),
    "cold-start": cold_start.run,
    "request-cost": request_cost.run,
    "job": job.run,
    "page-weight": page_weight.run,
}


def machine() -> dict:
    """What the numbers were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def engines() -> dict:
    """What stood in for AWS: DynamoDB Local as `make dynamodb-local` installs it, moto."""
    from importlib.metadata import version

    return {"dynamodb": "DynamoDB Local 1.11.478 (in memory)",
            "ses, ssm": f"moto {version('moto')} server, one request at a time"}


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if float(value).is_integer() or unit in ("bytes",):
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = ["| measure | value | baseline | ratio | goal | met | notes |",
             "|---|---:|---:|---:|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        value = f"{_number(row.value, row.unit)} {row.unit}".strip()
        baseline = f"{_number(row.baseline, row.unit)} {row.unit}".strip() \
            if row.baseline is not None else ""
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        lines.append(f"| {row.section}: {row.measure} | {value} | {baseline} | {ratio} | "
                     f"{row.goal} | {met} | {row.note} |")
    return "\n".join(lines)


def run(sections: list[str], smoke: bool) -> list[Row]:
    rows: list[Row] = []
    with moto_server() as endpoint, dynamodb_local() as dynamodb, \
            aws_pointed_at(endpoint, dynamodb):
        for name in sections:
            runner = SECTIONS[name]
            started = time.perf_counter()
            print(f"bench: {name}…", file=sys.stderr, flush=True)
            rows += runner(smoke, endpoint)
            print(f"bench: {name} done in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for make test")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = run(args.only, args.smoke)
    report = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "smoke": args.smoke, "machine": machine(), "engines": engines(),
              "rows": [row.as_dict() for row in rows]}
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    about = report["machine"]
    print(f"\nMeasured {report['generated_at']} on {about['nproc']} × {about['cpu']}, "
          f"Python {about['python']}, {about['system']}{' (smoke sizes)' if args.smoke else ''}"
          f"; {'; '.join(f'{k}: {v}' for k, v in report['engines'].items())}"
          f"\n\n{table(rows)}\n\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
