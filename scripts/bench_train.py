"""Training-step throughput: the suite's SimCLR (sigmoid attention, FlashSigmoid) against a
reference built from stock timm + lightly only (softmax SDPA), same model size and batch, same run.

    python scripts/bench_train.py [--model vit_small_patch16_224] [--batch 16] [--steps 5] [--device cpu]

Prints views/s of a full step (forward, NT-Xent, backward, AdamW) and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import time

import timm
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from ssl_suite.config import load_config
from ssl_suite.methods import SimCLR


def stock_step(model, head, loss_fn, opt, views):
    z0, z1 = head(model(torch.cat(views))).chunk(2)
    loss = loss_fn(z0, z1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def suite_step(method, opt, views):
    method.log = method.log_dict = lambda *a, **k: None  # no Trainer attached in a raw step
    loss = method.training_step((views, torch.zeros(len(views[0]), dtype=torch.long, device=views[0].device)), 0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def rate(step, views, steps, device) -> float:
    step()  # warm-up (allocations, first-call compilation)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * sum(len(v) for v in views) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vit_small_patch16_224", help="stock timm name; ours is <name>_sigmoid")
    p.add_argument("--batch", type=int, default=16, help="samples per step (2 views each)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = p.parse_args()
    size = timm.create_model(args.model, pretrained=False).default_cfg["input_size"][-1]
    views = [torch.randn(args.batch, 3, size, size, device=args.device) for _ in range(2)]
    autocast = torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.precision == "bf16")

    torch.manual_seed(0)
    stock = timm.create_model(args.model, pretrained=False, num_classes=0, qk_norm=True, init_values=1e-4).to(
        args.device
    )
    head = SimCLRProjectionHead(stock.num_features, 512, 128).to(args.device)
    opt = torch.optim.AdamW([*stock.parameters(), *head.parameters()], lr=1e-4)
    loss_fn = NTXentLoss(temperature=0.1)
    results = {}
    with autocast:
        results["stock timm + lightly (softmax, SDPA)"] = rate(
            lambda: stock_step(stock, head, loss_fn, opt, views), views, args.steps, args.device
        )
        for attention in ("sigmoid", "softmax"):
            cfg = load_config(
                None,
                [
                    f"model.name={args.model}_sigmoid",
                    f"model.attention={attention}",
                    "method.proj_hidden_dim=512",
                    "method.proj_output_dim=128",
                ],
            )
            method = SimCLR(cfg, num_classes=10).to(args.device).train()
            opt = torch.optim.AdamW(method.parameters(), lr=1e-4)
            results[f"ssl-suite SimCLR ({attention})"] = rate(
                lambda method=method, opt=opt: suite_step(method, opt, views), views, args.steps, args.device
            )
    base = next(iter(results.values()))
    print(
        f"| training step ({args.model}, batch {args.batch} x 2 views, {args.precision}, {args.device}, "
        f"{torch.get_num_threads()} threads) | views/s | ratio to stock |\n|---|---|---|"
    )
    for name, r in results.items():
        print(f"| {name} | {r:.1f} | {r / base:.2f} |")


if __name__ == "__main__":
    main()
