from __future__ import annotations

import sys

from berth.cli import main

sys.exit(main())
