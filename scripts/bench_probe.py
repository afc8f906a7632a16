"""Fit time of the suite's logistic probe vs sklearn's LogisticRegression on the same features.

Synthetic "cached features" (Gaussian class means + unit noise, then per-dimension scales and
offsets so that standardising matters; seeded; ``--sep`` keeps top-1 well below 100%) are
standardised with the train mean/std; then, in one run and with the same thread count:
sklearn ``LogisticRegression(C, max_iter, tol)`` (lbfgs, multinomial), the suite's ``fit_logistic``
at the same C/max_iter/tol, and the suite's full ``logistic_probe`` sweep (its default C grid,
hold-out selection, refit) timed separately. Prints a Markdown table.
The issue's goal: ``fit_logistic`` >= 5x faster than sklearn at <= 0.5 point of top-1 apart.

    python scripts/bench_probe.py                          # 50k x 384, 100 classes, CPU
    python scripts/bench_probe.py --n 10000 --threads 2 --device cpu
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ssl_suite.eval.linear import topk_accuracy
from ssl_suite.eval.logistic import fit_logistic, logistic_probe, standardize
from ssl_suite.eval.synthetic import gaussian_features


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="train samples")
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--sep", type=float, default=0.15, help="class-mean scale (difficulty)")
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both torch and sklearn (BLAS, OpenMP)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sweep", action="store_true", help="skip the logistic_probe sweep")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    # overlapping classes, badly scaled: log-scales in (-2, 2), offsets 3 N(0, 1)
    xtr, ytr, xte, yte = gaussian_features(a.n, a.n_test, a.dim, a.classes, a.sep, a.seed, log_scale=2.0, offset=3.0)
    sxtr, sxte = standardize(xtr, xte)
    rows = []

    with threadpool_limits(limits=a.threads):
        t = time.perf_counter()
        clf = LogisticRegression(C=a.C, max_iter=a.max_iter, tol=a.tol).fit(sxtr.numpy(), ytr.numpy())
        sk_s = time.perf_counter() - t
    sk_top1 = 100.0 * float((clf.predict(sxte.numpy()) == yte.numpy()).mean())
    rows.append((f"sklearn LogisticRegression (lbfgs, {int(np.max(clf.n_iter_))} iter)", sk_s, sk_top1))

    if torch.device(a.device).type == "cuda":  # keep CUDA start-up out of the timing
        fit_logistic(sxtr[:100], ytr[:100], a.classes, C=a.C, max_iter=2, device=a.device)
        torch.cuda.synchronize()
    t = time.perf_counter()
    w, b = fit_logistic(sxtr, ytr, a.classes, C=a.C, max_iter=a.max_iter, tol=a.tol, device=a.device)
    if torch.device(a.device).type == "cuda":
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - t
    ours_top1 = topk_accuracy((sxte.to(a.device) @ w.T + b).cpu(), yte, (1,))["top1"]
    rows.append(("suite fit_logistic (L-BFGS fp32)", ours_s, ours_top1))

    if not a.no_sweep:
        t = time.perf_counter()
        res = logistic_probe(xtr, ytr, xte, yte, max_iter=a.max_iter, tol=a.tol, device=a.device, progress=False)
        rows.append(
            (
                f"suite logistic_probe ({len(res['val_top1'])}-C sweep + refit, chose C={res['C']:.3g})",
                time.perf_counter() - t,
                res["top1"],
            )
        )

    print(
        f"\n{a.n} x {a.dim} train, {a.n_test} test, {a.classes} classes, C={a.C}, max_iter={a.max_iter}, "
        f"tol={a.tol}, device={a.device}, threads={a.threads}\n"
    )
    print("| method | fit seconds | test top-1 (%) |\n|---|---:|---:|")
    for name, secs, top1 in rows:
        print(f"| {name} | {secs:.2f} | {top1:.2f} |")
    print(
        f"\nspeed-up of fit_logistic over sklearn: {sk_s / ours_s:.1f}x; "
        f"top-1 gap (suite - sklearn): {ours_top1 - sk_top1:+.2f} points"
    )


if __name__ == "__main__":
    main()
