#!/usr/bin/env python3
"""The first attention call after process start with the driver's JIT cache disabled: `fawheels first-call`
(see fawheels.deploy.firstcall), kept as a script for the machines that run it by path.

    python scripts/first_call.py WHEEL [--runs 3] [--report first-call.json]   (--out: the old spelling)

On a GPU machine with the wheel's torch installed; PYTHONPATH=src when fawheels is not installed."""

import sys

from fawheels.cli import main

if __name__ == "__main__":
    sys.exit(main(["first-call", *sys.argv[1:]]))
