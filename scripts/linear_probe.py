"""Linear-probe a frozen backbone: python scripts/linear_probe.py CONFIG [key=value ...] [--checkpoint CKPT]."""
import sys

from ssl_suite.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", "linear", *sys.argv[1:]]))
