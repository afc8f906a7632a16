"""The EMA scaling rule, shown: BYOL on Fashion-MNIST at the base batch and at kappa x the base
batch, with and without the rule, the same number of samples seen; each backbone linear-probed.

    python scripts/ema_scaling_experiment.py [--kappa 4] [--samples 20000] [--epochs 1] [key=value ...]

At kappa x the batch every run keeps the optimizer's own rule (AdamW: sqrt lr, betas, eps);
"without" leaves the EMA momentum at the base batch's schedule, "with" raises it to kappa.
Prints a Markdown table; runs go to runs/ema_scaling/<name>.
"""

from __future__ import annotations

import argparse

from ssl_suite.config import load_config
from ssl_suite.eval.run import evaluate
from ssl_suite.train import pretrain


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/pretrain/byol_vit_nano_fmnist.yaml")
    p.add_argument("--kappa", type=int, default=4)
    p.add_argument("--samples", type=int, default=20000, help="training images per epoch (train_subset)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    base = load_config(args.config, args.overrides)
    b0 = base.optim.base_batch_size
    runs = {
        f"base batch {b0}": [f"data.batch_size={b0}"],
        f"batch {args.kappa * b0}, EMA rule on": [f"data.batch_size={args.kappa * b0}", "method.ema_scaling_rule=true"],
        f"batch {args.kappa * b0}, EMA rule off": [
            f"data.batch_size={args.kappa * b0}",
            "method.ema_scaling_rule=false",
        ],
    }
    rows = []
    for name, extra in runs.items():
        slug = f"{name.replace(' ', '_').replace(',', '')}_{args.samples}x{args.epochs}"
        cfg = load_config(
            args.config,
            [
                *args.overrides,
                *extra,
                f"data.train_subset={args.samples}",
                f"trainer.max_epochs={args.epochs}",
                f"output_dir=runs/ema_scaling/{slug}",
            ],
        )
        last = pretrain(cfg, overwrite=True)
        result = evaluate(cfg, str(last), ("linear", "knn"), baseline=False)["pretrained"]
        rows.append((name, result["linear"]["top1"], result["knn"]["top1"]))
    print(f"\n| BYOL, {args.samples * args.epochs} samples seen | linear top-1 (%) | kNN top-1 (%) |\n|---|---|---|")
    for name, lin, knn in rows:
        print(f"| {name} | {lin:.2f} | {knn:.2f} |")


if __name__ == "__main__":
    main()
