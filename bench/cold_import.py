"""Cold import: a fresh process importing the app and the job, against flask + boto3."""

from __future__ import annotations

import os
import subprocess

from bench.harness import APP_ENV, PYTHON, ROOT, Row, interleaved_medians, ratio_row

SECTION = "cold import"
APP = "import app, handlers.followup"
BASELINE = "import flask, boto3"
# Loaded on first use, never by the import: each costs a cold start every request pays.
HEAVY = ("phonenumbers", "holidays", "email_validator", "boto3", "botocore", "babel.localedata")


def _process(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **APP_ENV)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def heavy_modules_loaded() -> list[str]:
    """Which heavy modules a bare import of the app and the job loads."""
    names = ", ".join(repr(n) for n in HEAVY)
    # babel.localedata is always imported; what costs is a locale's data being read.
    out = _process(f"{APP}; import sys, babel.localedata as l; "
                   f"print(' '.join(n for n in ({names},) if n in sys.modules "
                   "and n != 'babel.localedata') + (' babel-data' if l._cache else ''))")
    return out.stdout.split()


def run(smoke: bool) -> list[Row]:
    repeats = 3 if smoke else 21
    _process(APP), _process(BASELINE)  # warm the disk cache and write .pyc files
    medians = interleaved_medians({"app": lambda: _process(APP),
                                   "baseline": lambda: _process(BASELINE)}, repeats)
    loaded = heavy_modules_loaded()
    return [
        ratio_row(SECTION, f"`{APP}` vs `{BASELINE}`", medians["app"] * 1000,
                  medians["baseline"] * 1000, "ms", "<= 1.25",
                  f"median of {repeats} fresh processes each"),
        Row(SECTION, "heavy modules loaded by the import", len(loaded), "modules",
            goal="<= 0", note=" ".join(loaded) or f"none of {', '.join(HEAVY)}"),
    ]
