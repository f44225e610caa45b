"""`python -m services.prober`: run the camera prober until SIGTERM/SIGINT (or `--once`)."""

from __future__ import annotations

import sys

from services.prober.run import main

if __name__ == "__main__":
    sys.exit(main())
