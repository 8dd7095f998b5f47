"""Refuse an uncommitted tree before anything reaches AWS (``make deploy``, ``make update``).

Zappa's ``deploy`` creates or updates the role, its trust and its policy
(``create_iam_roles``) before it runs the prebuild that refuses uncommitted files
(zappa/cli.py, ``ZappaCLI.deploy``), so an edit to deploy/policy-*.json could reach IAM
from a tree that is then refused. The wrappers run this first: the same paths, the same
refusal (deploy/prebuild.py ``uncommitted``), and no AWS call.

    python -m deploy.cleantree        # exit 0 when clean, else the files and exit 1
"""

from __future__ import annotations

import sys

from deploy import prebuild


def main() -> int:
    changed = prebuild.uncommitted()
    if changed:
        print("refusing to deploy uncommitted or untracked files (commit or stash them "
              f"first): {', '.join(changed[:10])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
