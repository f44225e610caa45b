"""`python -m services.simulator`: run the fleet simulator (see `cctv simulate --help`)."""

from __future__ import annotations

import sys

from services.simulator.run import main

if __name__ == "__main__":
    sys.exit(main())
