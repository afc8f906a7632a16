"""Pretrain a backbone: python scripts/pretrain.py CONFIG [key=value ...] [--resume [CKPT]]."""

import sys

from ssl_suite.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
