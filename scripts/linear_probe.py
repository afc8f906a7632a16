"""Linear-probe a frozen backbone, ImageNet protocol by default.

    python scripts/linear_probe.py --data /path/to/imagenet --checkpoint backbone.safetensors
    python scripts/linear_probe.py configs/demo.yaml --checkpoint runs/demo/checkpoints/last.ckpt \
        eval.linear_augment=true

``--data`` is a folder with train/ and val/ in the ImageFolder layout; the config (default: the
ViT-S/16 ImageNet one, whose eval section holds MAE's probe settings) gives the model and protocol.
"""

import argparse
import sys

from ssl_suite.cli import main

DEFAULT_CONFIG = "configs/pretrain/simclr_vit_s16_imagenet.yaml"

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--data", help="ImageNet root (train/ and val/ ImageFolders)")
    p.add_argument("--checkpoint")
    p.add_argument("--probe", default="linear", help="linear (default), logistic, knn, fewshot, calibration or all")
    args = p.parse_args()
    overrides = list(args.overrides)
    if "=" in args.config:  # no config given: the first word was already an override
        overrides.insert(0, args.config)
        args.config = DEFAULT_CONFIG
    if args.data:
        overrides += [
            "data.dataset=imagefolder",
            f"data.root={args.data}",
            "data.train_split=train",
            "data.eval_split=val",
        ]
    argv = ["eval", args.probe, args.config, *overrides] + (
        ["--checkpoint", args.checkpoint] if args.checkpoint else []
    )
    sys.exit(main(argv))
