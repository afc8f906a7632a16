"""Run an objectives x attention grid and write its report.

python scripts/compare_objectives.py GRID [--run I | --print-jobs | --report]
"""

import sys

from ssl_suite.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
