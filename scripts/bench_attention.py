"""Sigmoid attention paths vs SDPA softmax: time (forward, forward+backward) and peak memory.

Every number is a ratio to ``F.scaled_dot_product_attention`` measured in the same run
(timings interleaved rep by rep, median of the per-rep ratios), so a busy machine shifts both
sides alike. Prints a Markdown table. The timing code is ``flash_sigmoid.check``'s.

    python scripts/bench_attention.py                 # CPU (fp32; bf16 too where the CPU has bf16
                                                      # instructions), and CUDA (fp16, bf16) if present
    python scripts/bench_attention.py --quick --device cpu
    python scripts/bench_attention.py --device cuda --dtype bf16
    python scripts/bench_attention.py --device cpu --floor  # + what the CPU path's parts cost

``--floor`` adds two CPU rows per shape, each timed against SDPA in its own interleaved run:
"cpu, matmuls only" is the CPU path with its elementwise passes (bias + sigmoid, dS) made no-ops,
so only its matrix products and blocking remain: no implementation that makes the same products
can be faster, however well it fuses the rest. "cpu, P kept" keeps P for the backward at every
length (the default keeps it at ViT lengths only): one product fewer, at O(n^2) memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from unittest import mock

import flash_sigmoid
import torch
from flash_sigmoid.check import DTYPES, bench_shape, methods

# (batch, heads, n, d): ViT-S/16 at 224 px, then long sequences with fewer heads so the
# materialised reference (several B*H*n^2 score tensors) fits in memory
CPU_SHAPES = [(32, 6, 197, 64), (4, 6, 1024, 64), (1, 6, 4096, 64), (1, 2, 8192, 64)]
CUDA_SHAPES = [
    (32, 6, 197, 64),
    (8, 6, 1024, 64),
    (4, 6, 4096, 64),
    (2, 6, 8192, 64),
    (1, 6, 16384, 64),
    (32, 6, 197, 128),
    (4, 6, 4096, 128),
    (1, 6, 16384, 128),
]


def _noop(*_: object, **__: object) -> None:
    return None


def _products_only(p: torch.Tensor, q: torch.Tensor, k: torch.Tensor, scale: float, bias: float) -> None:
    torch.baddbmm(p, q, k.transpose(1, 2), beta=0, alpha=scale, out=p)


# variants of the CPU path for --floor: (row name, patches to flash_sigmoid.cpu while it is timed)
FLOOR_VARIANTS = {
    "cpu, matmuls only": {"_probabilities": _products_only, "_dsigmoid": _noop},
    "cpu, P kept": {"keeps_scores": lambda nq, nk: True},
}


@contextlib.contextmanager
def floor_variant(name: str) -> Iterator[None]:
    """The CPU path patched as ``FLOOR_VARIANTS[name]`` says, inside the ``with`` block."""
    with contextlib.ExitStack() as stack:
        for attr, fn in FLOOR_VARIANTS[name].items():
            stack.enter_context(mock.patch.object(flash_sigmoid.cpu, attr, fn))
        yield


def floor_rows(shape: tuple[int, int, int, int], dtype: torch.dtype, reps: int) -> dict[str, dict[str, float]]:
    """{variant: bench_shape's row for the patched CPU path, ratios to SDPA in the same run}."""
    rows = {}
    fns = {k: f for k, f in methods("cpu").items() if k in ("sdpa", "cpu")}
    for name in FLOOR_VARIANTS:
        with floor_variant(name):
            rows[name] = bench_shape(shape, dtype, "cpu", reps, fns)["cpu"]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two shapes, 3 reps")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument(
        "--dtype", default=None, help="comma list of fp32,fp16,bf16 (default fp32 on CPU, fp16,bf16 on CUDA)"
    )
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--floor", action="store_true", help="CPU: add matmuls-only and P-kept rows (see above)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [dv for dv in devices if dv == "cpu" or torch.cuda.is_available()]
    reps = args.reps or (3 if args.quick else 7)
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}, reps {reps}, "
        f"cpu block elements {flash_sigmoid.cpu.CHUNK_ELEMENTS} (n <= 256: {flash_sigmoid.cpu.SHORT_BLOCK_ELEMENTS}), "
        f"CPU bf16 matmuls {flash_sigmoid.cpu.NATIVE_BF16}"
        + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else "")
        + "\n"
    )
    print(
        "| device | dtype | B x H x n x d | path | fwd / SDPA | fwd+bwd / SDPA | peak mem / SDPA "
        "| fwd+bwd ms | peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for device in devices:
        cpu_dtypes = ["fp32", "bf16"] if flash_sigmoid.cpu.NATIVE_BF16 else ["fp32"]
        dtypes = args.dtype.split(",") if args.dtype else (cpu_dtypes if device == "cpu" else ["fp16", "bf16"])
        shapes = CPU_SHAPES if device == "cpu" else CUDA_SHAPES
        shapes = shapes[:2] if args.quick else shapes
        for dt in dtypes:
            for shape in shapes:
                res = bench_shape(shape, DTYPES[dt], device, reps)
                if args.floor and device == "cpu":
                    res.update(floor_rows(shape, DTYPES[dt], reps))
                sdpa_mem = max(res["sdpa"]["mem"], 1)
                for name, r in res.items():
                    print(
                        f"| {device} | {dt} | {' x '.join(map(str, shape))} | {name} | "
                        f"{r['fwd']:.2f} | {r['fwd+bwd']:.2f} | {r['mem'] / sdpa_mem:.2f} | "
                        f"{r['fwd+bwd_ms']:.1f} | {r['mem'] / 2**20:.0f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
