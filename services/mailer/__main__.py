"""`python -m services.mailer`: run the subcommittee mailer until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.mailer.run import main

if __name__ == "__main__":
    sys.exit(main())
