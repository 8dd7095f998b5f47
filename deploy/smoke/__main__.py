"""``python -m deploy.smoke``: see deploy/smoke/__init__.py."""

import sys

from deploy.smoke import main

sys.exit(main())
