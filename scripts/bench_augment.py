"""Augmentation throughput: lightly's per-image CPU transforms vs kornia on whole batches.

    python scripts/bench_augment.py [--config configs/demo.yaml] [--images 2048] [--device cpu|cuda]

Both paths make ``data.num_views`` views per image with the config's recipe. The CPU path runs
in this process (one worker; multiply by the loader's num_workers for a pipeline estimate).
"""

from __future__ import annotations

import argparse
import time

import torch

from ssl_suite.config import load_config
from ssl_suite.data import device_views, ssl_train_dataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()

    cpu_cfg = load_config(args.config, [*args.overrides, "data.augment_on=cpu"])
    dev_cfg = load_config(args.config, [*args.overrides, "data.augment_on=device"])
    cpu_set, raw_set = ssl_train_dataset(cpu_cfg.data), ssl_train_dataset(dev_cfg.data)
    n, m = min(args.images, len(cpu_set)), cpu_cfg.data.num_views

    start = time.perf_counter()
    for i in range(n):
        cpu_set[i]
    cpu_rate = n * m / (time.perf_counter() - start)

    augment = device_views(dev_cfg.data).to(args.device)
    batches = [
        torch.stack([raw_set[i][0] for i in range(s, min(s + args.batch, n))]).to(args.device)
        for s in range(0, n, args.batch)
    ]
    augment(batches[0])  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in batches:
        augment(b)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    dev_rate = n * m / (time.perf_counter() - start)

    print(
        f"| path | views/s | ratio to CPU path |\n|---|---|---|\n"
        f"| lightly transforms, CPU, 1 process | {cpu_rate:,.0f} | 1.00 |\n"
        f"| kornia batches on {args.device} ({torch.get_num_threads()} threads) | {dev_rate:,.0f} | "
        f"{dev_rate / cpu_rate:.2f} |"
    )
    print(f"({args.config}: {n} images x {m} views, image size {cpu_cfg.data.image_size})")


if __name__ == "__main__":
    main()
