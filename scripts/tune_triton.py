"""Time FlashSigmoid's Triton kernels over tile sizes, warps and pipeline stages on this GPU,
checking that every candidate gives the shipped configuration's result.

    python scripts/tune_triton.py --quick          # d = 64, n = 4096, 16 candidates per kernel (~2-3 min)
    python scripts/tune_triton.py                  # d = 64 and 128, ViT-S/16 and n = 4096, 32 candidates
    TRITON_INTERPRET=1 python scripts/tune_triton.py --smoke   # on CPU: the sweep runs; times mean nothing

The shipped tiles (``triton_kernels.block_config``) were chosen by ahead-of-time compiles for
"no register spills", never timed; on an H200 the kernels took 1.7-3.4x SDPA's time
(docs/gpu_h200.md). Each kernel (fwd, bwd_dkdv, bwd_dq) is launched alone, so a backward
candidate's time is not diluted by the other backward kernel. Per row: the shipped config's
time, the fastest candidate's and shipped / fastest (above 1: the candidate is faster). A
candidate whose outputs differ from the shipped config's beyond the dtype's rounding is marked
WRONG and never chosen; one that does not compile (shared memory, registers) is skipped.
``FLASH_SIGMOID_TANH=1`` in the environment times the one-op sigmoid form (bf16).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time
from collections.abc import Callable, Iterator

import torch
from flash_sigmoid import triton_kernels as tk
from flash_sigmoid.reference import default_bias

TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 5e-3, torch.float32: 1e-4}  # vs the shipped tiles' outputs


def candidates(full: bool) -> list[dict]:
    blocks = [(64, 64), (128, 64), (64, 128), (128, 128)] + ([(64, 32), (128, 32)] if full else [])
    warps, stages = (4, 8), ((2, 3, 4) if full else (2, 3))
    return [
        dict(BLOCK_M=m, BLOCK_N=n, num_warps=w, num_stages=s)
        for (m, n), w, s in itertools.product(blocks, warps, stages)
    ]


def kernel_call(kernel: str, shape: tuple[int, int, int, int], dtype: torch.dtype, device: str):
    """A no-argument launch of one kernel on random inputs, and the tensors it writes."""
    B, H, n, d = shape
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v, do = (torch.randn(B, H, n, d, device=device, dtype=dtype, generator=gen) for _ in range(4))
    scale, bias = d**-0.5, default_bias(n)
    if kernel == "fwd":
        outs: tuple[torch.Tensor, ...] = (torch.empty_like(q),)
        args = tk.fwd_args(q, k, v, outs[0], scale, bias)
        return lambda: tk._launch("fwd", (q, k, v, *outs), args, n), outs
    args = tk.bwd_args(q, k, v, do, scale, bias)
    if kernel == "bwd_dkdv":
        outs = (torch.empty_like(k), torch.empty_like(v))
        return lambda: tk._launch("bwd_dkdv", (q, k, v, do, *outs), args, n, block="BLOCK_N"), outs
    outs = (torch.empty_like(q),)
    return lambda: tk._launch("bwd_dq", (q, k, v, do, *outs), args, n), outs


def timed(fn: Callable[[], None], device: str) -> float:
    """Milliseconds per call: Triton's do_bench on CUDA, one call on CPU (the interpreter)."""
    if device == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=10, rep=50))
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


@contextlib.contextmanager
def tiles(kernel: str, cfg: dict) -> Iterator[None]:
    """``kernel`` launched with ``cfg`` instead of the shipped tiles (the others unchanged)."""
    shipped = tk.block_config
    tk.block_config = lambda name, d, dtype: dict(cfg) if name == kernel else shipped(name, d, dtype)
    try:
        yield
    finally:
        tk.block_config = shipped


def sweep(kernel: str, shape: tuple, dtype: torch.dtype, device: str, configs: list[dict]) -> dict:
    """{"shipped": (cfg, ms), "best": (cfg, ms)}; candidates that differ are reported, not chosen."""
    fn, outs = kernel_call(kernel, shape, dtype, device)
    fn()
    expected = [t.float().clone() for t in outs]
    shipped = (tk.block_config(kernel, shape[-1], dtype), timed(fn, device))
    best = shipped
    for cfg in configs:
        with tiles(kernel, cfg):
            try:
                fn()
            except Exception as err:  # noqa: BLE001 -- too much shared memory or registers: not a candidate
                print(f"  skipped {fmt(cfg)}: {type(err).__name__}", flush=True)
                continue
            if any((a.float() - e).abs().max().item() > TOLERANCE[dtype] for a, e in zip(outs, expected)):
                print(f"  WRONG {kernel} {fmt(cfg)}: outputs differ from the shipped tiles'", flush=True)
                continue
            ms = timed(fn, device)
        if ms < best[1]:
            best = (cfg, ms)
    return {"shipped": shipped, "best": best}


def fmt(cfg: dict) -> str:
    return f"{cfg['BLOCK_M']}x{cfg['BLOCK_N']}, {cfg['num_warps']}w, {cfg['num_stages']}s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d = 64, n = 4096, bf16, 16 candidates")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, 2 candidates (CPU interpreter)")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not tk.interpreted():
        raise SystemExit("tune_triton: no CUDA device; on CPU run with TRITON_INTERPRET=1 and --smoke")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    if args.smoke:
        shapes, configs = [(1, 2, 40, 16)], [dict(BLOCK_M=16, BLOCK_N=32, num_warps=4, num_stages=2)]
        configs.append(dict(BLOCK_M=32, BLOCK_N=16, num_warps=4, num_stages=2))
    elif args.quick:
        shapes, configs = [(4, 6, 4096, 64)], candidates(full=False)
    else:
        shapes = [(b, 6, n, d) for d in (64, 128) for b, n in ((32, 197), (4, 4096))]
        configs = candidates(full=True)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU interpreter"
    print(
        f"{name}, torch {torch.__version__}, {args.dtype}, sigmoid form: {'tanh' if tk.tanh_sigmoid(dtype) else 'exp2'}"
    )
    print("\n| kernel | B x H x n x d | shipped | ms | fastest | ms | shipped / fastest |")
    print("|---|---|---|---|---|---|---|")
    for shape, kernel in itertools.product(shapes, tk.KERNELS):
        r = sweep(kernel, shape, dtype, device, configs)
        (scfg, sms), (bcfg, bms) = r["shipped"], r["best"]
        row = f"| {kernel} | {' x '.join(map(str, shape))} | {fmt(scfg)} | {sms:.3f} | {fmt(bcfg)} | {bms:.3f} |"
        print(f"{row} {sms / bms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
