"""`python -m cctv_cli`: the same as the `cctv` console script."""

import sys

from cctv_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
