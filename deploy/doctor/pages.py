"""The public pages, fetched as a traveller fetches them: ``GET /`` and ``GET /stats``.

``/`` needs only the function; ``/stats`` reads the table, so it also proves the role may
read it (moto enforces no IAM: only this live request shows a denied ``BatchGetItem``).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from deploy.doctor.report import fail, ok
from deploy.doctor.stage import Live, Stage

TIMEOUT_SECONDS = 30  # a cold start builds the app first


def _get(stage: Stage, path: str):
    base = stage.env.get("BASE_URL", "").rstrip("/")
    url = f"{base}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return fail(f"GET {url} failed ({reason}): is BASE_URL the URL "
                    f"{stage.zappa('status')} shows (or the custom domain, certified)?")
    if status == 200:
        return ok(f"GET {url} answered 200")
    return fail(f"GET {url} answered {status}: {stage.zappa('tail')} --since 10m says why")


def front_page(stage: Stage, live: Live):
    """``GET /`` answers 200."""
    return _get(stage, "/")


def stats_page(stage: Stage, live: Live):
    """``GET /stats`` answers 200 (it reads the table)."""
    return _get(stage, "/stats")
