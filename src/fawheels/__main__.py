"""`python -m fawheels`: the same command line as `fawheels`."""

import sys

from fawheels.cli import main

sys.exit(main())
