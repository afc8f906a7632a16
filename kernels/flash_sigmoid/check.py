"""``python -m flash_sigmoid.check``: is sigmoid attention right and fast on this machine?

1. Correctness of every backend this device can run (reference, the blocked path, Triton on
   CUDA) on odd shapes (masked tiles, n = 1, cross attention, head dims 64/80/128), in each
   dtype the device computes in, against the float64 reference: output and the three gradients
   must stay within twice the error of the materialised reference in the same dtype, plus a
   small floor (the rule FlashAttention's tests use). A Triton kernel that failed and fell back
   to the blocked path counts as a failure here: the check is about the kernel.
2. Speed and peak memory against SDPA softmax at the same shape, as ratios measured in the same
   run (timings interleaved rep by rep, median of per-rep ratios).

Exit status 1 when any result is wrong. ``scripts/bench_attention.py`` uses the same timing code
for its fuller table.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import flash_sigmoid
from flash_sigmoid import reference

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FLOOR = {"fp32": 1e-5, "fp16": 1e-3, "bf16": 8e-3}  # absolute error floor per dtype
# (batch, heads, n_queries, n_keys, head dim): tile edges, a single token, cross attention
AttnFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (q, k, v) -> out
ODD_SHAPES = [(2, 3, 197, 197, 64), (1, 2, 203, 203, 80), (1, 2, 1, 1, 64), (1, 2, 17, 203, 128), (1, 2, 203, 17, 64)]


def backends(device: str) -> list[str]:
    # the reference first (the yardstick), then the fast path that device dispatches to:
    # pick_backend refuses the blocked CPU path on CUDA tensors (it is only the fallback there)
    return ["reference", "triton"] if device == "cuda" else ["reference", "cpu"]


def _grads(fn: AttnFn, q: Tensor, k: Tensor, v: Tensor, g: Tensor) -> list[Tensor]:
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v)
    out.backward(g.to(out.dtype))
    assert q.grad is not None and k.grad is not None and v.grad is not None  # all require grad
    return [out, q.grad, k.grad, v.grad]


def check_case(
    shape: tuple[int, int, int, int, int], dtype: str, backend: str, device: str, seed: int = 0
) -> dict[str, Any]:
    """Max abs errors (out, dq, dk, dv) of ``backend`` and of the same-dtype reference vs float64."""
    B, H, nq, nk, d = shape
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, n, d, generator=gen) for n in (nq, nk, nk))
    g = torch.randn(B, H, nq, d, generator=gen)
    q, k, v, g = (t.to(device) for t in (q, k, v, g))
    exact = _grads(reference.sigmoid_attention, q.double(), k.double(), v.double(), g.double())
    ql, kl, vl = (t.to(DTYPES[dtype]) for t in (q, k, v))
    same = _grads(reference.sigmoid_attention, ql, kl, vl, g)
    failures_before = len(flash_sigmoid._triton_failure)
    got = _grads(lambda q, k, v: flash_sigmoid.sigmoid_attention(q, k, v, backend=backend), ql, kl, vl, g)

    def errors(res: list[Tensor]) -> list[float]:
        return [(a.double() - b).abs().max().item() for a, b in zip(res, exact)]

    kernel, ref = errors(got), errors(same)
    fell_back = len(flash_sigmoid._triton_failure) > failures_before
    ok = not fell_back and all(kv <= 2 * rv + FLOOR[dtype] for kv, rv in zip(kernel, ref))
    return dict(
        shape=shape,
        dtype=dtype,
        backend=backend,
        kernel=kernel,
        reference=ref,
        ok=ok,
        note=f"fell back: {flash_sigmoid._triton_failure[0]}" if fell_back else "",
    )


def correctness(device: str, dtypes: list[str]) -> list[dict[str, Any]]:
    """Every fast backend the device runs (the reference is the yardstick, not a contender)."""
    return [check_case(shape, dt, b, device) for b in backends(device)[1:] for dt in dtypes for shape in ODD_SHAPES]


# ---- speed and memory against SDPA (also used by scripts/bench_attention.py) -----------------


def methods(device: str) -> dict[str, AttnFn]:
    fns: dict[str, AttnFn] = {"sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v)}
    for b in backends(device):

        def attn(q: Tensor, k: Tensor, v: Tensor, b: str = b) -> Tensor:
            return flash_sigmoid.sigmoid_attention(q, k, v, backend=b)

        fns[b] = attn
    return fns


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _clock(fn: Callable[[], object], device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


class PeakMemory:
    """Peak bytes above the level at entry: the CUDA allocator's counter, or on CPU the
    process's peak RSS (VmHWM, reset through /proc/self/clear_refs; Linux only)."""

    def __init__(self, device: str) -> None:
        self.device = device

    @staticmethod
    def _hwm() -> int:
        match = re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read())
        assert match is not None  # every Linux process's status has it
        return int(match.group(1)) * 1024

    def __enter__(self) -> PeakMemory:
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

    def __exit__(self, *exc: object) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = self._hwm() - self.base


def bench_shape(
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
    device: str,
    reps: int,
    fns: dict[str, AttnFn] | None = None,
) -> dict[str, dict[str, float]]:
    """{path: {"fwd", "fwd+bwd" (ratios to SDPA), "fwd_ms", "fwd+bwd_ms", "mem" (bytes)}}."""
    B, H, n, d = shape
    q, k, v, g = (torch.randn(B, H, n, d, device=device, dtype=dtype) for _ in range(4))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    fns = fns or methods(device)

    def fwd_bwd(fn: AttnFn) -> Callable[[], None]:
        def run() -> None:
            fn(q, k, v).backward(g)
            q.grad = k.grad = v.grad = None

        return run

    rows: dict[str, dict[str, list[float]]] = {name: {"fwd": [], "fwd+bwd": []} for name in fns}
    for fn in fns.values():  # warm-up (and compile/JIT) outside the timed reps
        fwd_bwd(fn)()
    for _ in range(reps):
        for name, fn in fns.items():
            with torch.no_grad():
                rows[name]["fwd"].append(_clock(functools.partial(fn, q, k, v), device))
            rows[name]["fwd+bwd"].append(_clock(fwd_bwd(fn), device))
    out: dict[str, dict[str, float]] = {}
    for name, fn in fns.items():
        with PeakMemory(device) as mem:
            fwd_bwd(fn)()
        out[name] = {"mem": mem.peak}
        for key in ("fwd", "fwd+bwd"):
            out[name][key] = statistics.median(a / b for a, b in zip(rows[name][key], rows["sdpa"][key]))
            out[name][key + "_ms"] = 1e3 * statistics.median(rows[name][key])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    assert __doc__ is not None  # the module docstring above
    ap = argparse.ArgumentParser(prog="python -m flash_sigmoid.check", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="fewer dtypes and one speed shape")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("flash_sigmoid.check: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    device = args.device
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    dtypes = (["fp16", "bf16", "fp32"] if device == "cuda" else ["fp32", "bf16"])[: 2 if args.quick else 3]
    print(f"flash_sigmoid check on {name} (torch {torch.__version__})\n")
    print("| backend | dtype | B, H, Nq, Nk, d | max error out / dq / dk / dv | same-dtype reference | ok |")
    print("|---|---|---|---|---|---|")
    rows = correctness(device, dtypes)
    for r in rows:
        errs = " / ".join(f"{e:.1e}" for e in r["kernel"])
        refs = " / ".join(f"{e:.1e}" for e in r["reference"])
        print(
            f"| {r['backend']} | {r['dtype']} | {', '.join(map(str, r['shape']))} | {errs} | {refs} | "
            f"{'ok' if r['ok'] else 'WRONG ' + r['note']} |",
            flush=True,
        )
    shapes = [(32, 6, 197, 64)] + ([] if args.quick else [(4, 6, 4096, 64)])
    speed_dtype = "bf16" if device == "cuda" else "fp32"
    print(f"\n| path | {speed_dtype} B x H x n x d | fwd / SDPA | fwd+bwd / SDPA | peak mem / SDPA | fwd+bwd ms |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        res = bench_shape(shape, DTYPES[speed_dtype], device, reps=3 if args.quick else 7)
        sdpa_mem = max(res["sdpa"]["mem"], 1)
        for path, r in res.items():
            print(
                f"| {path} | {' x '.join(map(str, shape))} | {r['fwd']:.2f} | {r['fwd+bwd']:.2f} | "
                f"{r['mem'] / sdpa_mem:.2f} | {r['fwd+bwd_ms']:.1f} |",
                flush=True,
            )
    wrong = [r for r in rows if not r["ok"]]
    print(
        f"\n{len(rows) - len(wrong)} of {len(rows)} correctness cases within 2 x the same-dtype reference error"
        + (f"; WRONG: {len(wrong)}" if wrong else "")
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
