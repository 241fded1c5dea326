import sys

from realtime_sed.cli import main

sys.exit(main())
