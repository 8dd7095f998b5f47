"""``python -m deploy.doctor <stage>``: see deploy/doctor/__init__.py."""

import sys

from deploy.doctor import main

sys.exit(main())
