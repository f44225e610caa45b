"""`python -m services.sink`: run the ClickHouse sink until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.sink.run import main

if __name__ == "__main__":
    sys.exit(main())
