#!/usr/bin/env python3
"""The first attention call after process start with the driver's JIT cache disabled (see fawheels.deploy.firstcall).

    python scripts/first_call.py WHEEL [--runs 3] [--out first-call.json]

On a GPU machine with the wheel's torch installed; PYTHONPATH=src when fawheels is not installed."""

import sys

from fawheels.deploy.firstcall import main

if __name__ == "__main__":
    sys.exit(main())
