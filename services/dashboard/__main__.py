import sys

from services.dashboard.run import main

sys.exit(main())
