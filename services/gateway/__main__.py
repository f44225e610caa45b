"""`python -m services.gateway`: run the ingestion gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.gateway.run import main

if __name__ == "__main__":
    sys.exit(main())
