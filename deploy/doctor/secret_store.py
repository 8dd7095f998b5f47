"""The stage's secrets are readable under SECRETS_PATH, as the function reads them.

Read with ``ssm:GetParameters`` and decryption, the function's own call
(tracker/config.py ``stored_secrets``); names are printed, values never.
"""

from __future__ import annotations

from deploy.doctor.report import fail, ok
from deploy.doctor.stage import Live, Stage
from tracker.config import STORED_SECRETS

# SECRET_KEY_FALLBACKS exists only after a first rotation (deploy/secret.py).
REQUIRED = ("SECRET_KEY", "ADDRESS_PEPPER")


def secrets(stage: Stage, live: Live):
    """SECRET_KEY and ADDRESS_PEPPER exist under SECRETS_PATH and decrypt."""
    path = stage.env.get("SECRETS_PATH", "")
    if not path:
        return fail("no SECRETS_PATH in the settings: the function starts without its keys")
    prefix = path.rstrip("/") + "/"
    answer = live.client("ssm").get_parameters(
        Names=[prefix + name for name in STORED_SECRETS], WithDecryption=True)
    found = {p["Name"][len(prefix):] for p in answer["Parameters"] if p.get("Value")}
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        return fail(f"{', '.join(missing)} missing under {prefix}: the function cannot start: "
                    f"python -m deploy.secret {stage.name}")
    return ok(f"{', '.join(sorted(found))} readable under {prefix}")
