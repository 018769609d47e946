#!/usr/bin/env python
"""Run the Stable-SPAM cross-domain benchmark suite; ``python run_all.py --help`` documents every option."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
