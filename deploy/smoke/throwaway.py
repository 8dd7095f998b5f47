"""The throwaway stage: its name, its settings file and its role's policy, in a folder.

The stage extends ``dev`` in a copy of zappa_settings.json (passed to Zappa with ``-s``),
with every name of its own: its table, secrets path, configuration set, queue, topics
(the operations stack derives those from the stage's name), function and rule. Its
policy is dev's with dev's names replaced by its own, so it proves dev's policy too.
Nothing of it is written inside the repository: the prebuild refuses a dirty tree.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from deploy.doctor.stage import JOB, ROOT

PARENT = "dev"
PLACEHOLDER_URL = "https://not-deployed-yet.invalid"


@dataclass(frozen=True)
class Throwaway:
    """A stage named ``smoke<6 hex>`` whose settings and policy live in ``folder``."""

    name: str
    folder: Path

    @property
    def settings_file(self) -> Path:
        return self.folder / "zappa_settings.json"

    @property
    def policy_file(self) -> Path:
        return self.folder / f"policy-{self.name}.json"


def renamed(text: str, name: str) -> str:
    """dev's names in a policy or settings text, made the throwaway stage's."""
    return (text.replace(f"esim-tracker-{PARENT}", f"esim-tracker-{name}")
            .replace(f"esim-cancellations-{PARENT}", f"esim-cancellations-{name}")
            .replace(f"/esim-tracker/{PARENT}/", f"/esim-tracker/{name}/"))


def create(folder: Path, name: str | None = None, *,
           source: Path = ROOT / "zappa_settings.json") -> Throwaway:
    """Write the stage's settings (from ``source``'s dev) and policy into ``folder``."""
    stage = Throwaway(name or f"smoke{secrets.token_hex(3)}", folder)
    settings = json.loads(source.read_text())
    parent = settings[PARENT]
    policy = renamed((ROOT / parent["attach_policy"]).read_text(), stage.name)
    if re.search(rf"[-/]{PARENT}\b", policy):
        raise ValueError(f"{parent['attach_policy']} names dev's resources in a way the smoke "
                         f"run cannot rename; extend deploy/smoke/throwaway.py renamed()")
    stage.policy_file.write_text(policy)
    env = json.loads(renamed(json.dumps(parent["environment_variables"]), stage.name))
    settings[stage.name] = {
        "extends": PARENT,
        "attach_policy": str(stage.policy_file),
        "environment_variables": {**env, "BASE_URL": PLACEHOLDER_URL},
        # The feedback subscription is the operations stack's (brief, decision 2).
        "events": [e for e in parent["events"] if e.get("function") == JOB],
    }
    stage.settings_file.write_text(json.dumps(settings, indent=2))
    return stage


def set_base_url(stage: Throwaway, url: str) -> None:
    """Point the stage's links and the doctor's page checks at its deployed API."""
    settings = json.loads(stage.settings_file.read_text())
    settings[stage.name]["environment_variables"]["BASE_URL"] = url
    stage.settings_file.write_text(json.dumps(settings, indent=2))
