"""Sigmoid attention paths vs SDPA softmax: time (forward, forward+backward) and peak memory.

Every number is a ratio to ``F.scaled_dot_product_attention`` measured in the same run
(timings interleaved rep by rep, median of the per-rep ratios), so a busy machine shifts both
sides alike. Prints a Markdown table.

    python scripts/bench_attention.py                 # CPU (fp32), and CUDA (fp16, bf16) if present
    python scripts/bench_attention.py --quick --device cpu
    python scripts/bench_attention.py --device cuda --dtype bf16
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import statistics
import time

import torch
import torch.nn.functional as F

import flash_sigmoid

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# (batch, heads, n, d): ViT-S/16 at 224 px, then long sequences with fewer heads so the
# materialised reference (several B*H*n^2 score tensors) fits in memory
CPU_SHAPES = [(32, 6, 197, 64), (4, 6, 1024, 64), (1, 6, 4096, 64), (1, 2, 8192, 64)]
CUDA_SHAPES = [(32, 6, 197, 64), (8, 6, 1024, 64), (4, 6, 4096, 64), (2, 6, 8192, 64),
               (1, 6, 16384, 64), (32, 6, 197, 128), (4, 6, 4096, 128), (1, 6, 16384, 128)]


def methods(device: str) -> dict:
    fns = {"sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
           "reference": lambda q, k, v: flash_sigmoid.sigmoid_attention(q, k, v, backend="reference")}
    if device == "cpu":
        fns["cpu"] = lambda q, k, v: flash_sigmoid.sigmoid_attention(q, k, v, backend="cpu")
    else:
        fns["triton"] = lambda q, k, v: flash_sigmoid.sigmoid_attention(q, k, v, backend="triton")
    return fns


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _clock(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


class PeakMemory:
    """Peak bytes above the level at entry: the CUDA allocator's counter, or on CPU the
    process's peak RSS (VmHWM, reset through /proc/self/clear_refs; Linux only)."""

    def __init__(self, device):
        self.device = device

    @staticmethod
    def _hwm():
        return int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:  # hand freed heap pages back first, so earlier runs do not hide this one's
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = self._hwm()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = self._hwm() - self.base


def bench_shape(shape, dtype, device, reps) -> dict:
    B, H, n, d = shape
    q, k, v, g = (torch.randn(B, H, n, d, device=device, dtype=dtype) for _ in range(4))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    fns = methods(device)

    def fwd_bwd(fn):
        def run():
            fn(q, k, v).backward(g)
            q.grad = k.grad = v.grad = None
        return run

    rows = {name: {"fwd": [], "fwd+bwd": []} for name in fns}
    for name, fn in fns.items():  # warm-up (and compile/JIT) outside the timed reps
        fwd_bwd(fn)()
    for _ in range(reps):
        for name, fn in fns.items():
            with torch.no_grad():
                rows[name]["fwd"].append(_clock(lambda: fn(q, k, v), device))
            rows[name]["fwd+bwd"].append(_clock(fwd_bwd(fn), device))
    out = {}
    for name, fn in fns.items():
        with PeakMemory(device) as mem:
            fwd_bwd(fn)()
        out[name] = {"mem": mem.peak}
        for key in ("fwd", "fwd+bwd"):
            out[name][key] = statistics.median(a / b for a, b in zip(rows[name][key], rows["sdpa"][key]))
            out[name][key + "_ms"] = 1e3 * statistics.median(rows[name][key])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two shapes, 3 reps")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--dtype", default=None, help="comma list of fp32,fp16,bf16 "
                    "(default fp32 on CPU, fp16,bf16 on CUDA)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [dv for dv in devices if dv == "cpu" or torch.cuda.is_available()]
    reps = args.reps or (3 if args.quick else 7)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}, reps {reps}, "
          f"cpu block elements {flash_sigmoid.cpu.CHUNK_ELEMENTS}"
          + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else "") + "\n")
    print("| device | dtype | B x H x n x d | path | fwd / SDPA | fwd+bwd / SDPA | peak mem / SDPA "
          "| fwd+bwd ms | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for device in devices:
        dtypes = args.dtype.split(",") if args.dtype else (["fp32"] if device == "cpu" else ["fp16", "bf16"])
        shapes = CPU_SHAPES if device == "cpu" else CUDA_SHAPES
        shapes = shapes[:2] if args.quick else shapes
        for dt in dtypes:
            for shape in shapes:
                res = bench_shape(shape, DTYPES[dt], device, reps)
                sdpa_mem = max(res["sdpa"]["mem"], 1)
                for name, r in res.items():
                    print(f"| {device} | {dt} | {' x '.join(map(str, shape))} | {name} | "
                          f"{r['fwd']:.2f} | {r['fwd+bwd']:.2f} | {r['mem'] / sdpa_mem:.2f} | "
                          f"{r['fwd+bwd_ms']:.1f} | {r['mem'] / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
