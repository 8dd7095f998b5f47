"""`make bench` keeps working: its smoke run (tiny sizes) produces every row.

Nothing here judges a number: wall-clock goals belong to `make bench`, not to tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# How many rows each section yields, whatever the machine.
ROWS = {"cold import": 2, "cold start": 5, "cost per request": 7, "follow-up job": 6}
EMAILS = {"receipt", "check", "reminder", "escalation", "recheck"}


@pytest.mark.browser
@pytest.mark.package
def test_bench_smoke_run_produces_every_row(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    rows = report["rows"]

    sections = {}
    for row in rows:
        sections[row["section"]] = sections.get(row["section"], 0) + 1
    assert {s: n for s, n in sections.items() if s in ROWS} == ROWS
    weighed = [row["measure"] for row in rows if row["section"] == "page weight"]
    assert {kind for kind in EMAILS if any(f"email `{kind}`" in m for m in weighed)} == EMAILS
    assert any(m.startswith("page `form`") for m in weighed)

    for row in rows:
        assert isinstance(row["value"], int | float) and math.isfinite(row["value"]), row
        if row["baseline"] is not None:
            assert row["baseline"] > 0, row
        if row["goal"]:
            assert row["met"] in (True, False), row
    assert report["machine"]["nproc"] >= 1 and report["machine"]["python"].startswith("3.")
    for row in rows:  # the printed table holds every row
        assert row["measure"] in done.stdout
