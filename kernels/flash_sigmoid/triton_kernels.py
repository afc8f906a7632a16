"""FlashSigmoid in Triton: out = sigmoid(q k^T * scale + bias) v, tiled, O(n) memory.

Sigmoid rows need no normalisation, so the forward keeps no running max or sum: each Q tile
streams K/V tiles and accumulates P V in fp32. The backward recomputes P from q and k and
saves nothing else (dS = dP * P * (1 - P)); it runs two kernels, one per K/V tile for dK/dV
and one per Q tile for dQ, so no atomics and deterministic results.

Checked without a GPU by Triton's interpreter (``TRITON_INTERPRET=1`` must be set before this
module is imported; tiles are then upcast to fp32 because bf16 ``tl.dot`` is wrong there) and
by ahead-of-time compilation for sm_80/sm_90 (``aot_compile``, ``ptxas_usage``).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import tempfile

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import env

LOG2E = 1.4426950408889634


@triton.jit
def _program(H, BLOCK_OWN: tl.constexpr, BLOCK_STREAM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    # this program's own rows (axis 0 of the grid), the offsets of a streamed tile and of the
    # head dims, and its (batch, head) as int64: base offsets of large batches overflow int32
    bh = tl.program_id(1)
    own = tl.program_id(0) * BLOCK_OWN + tl.arange(0, BLOCK_OWN)
    offs_d, offs_dv = tl.arange(0, BLOCK_D), tl.arange(0, BLOCK_DV)
    return own, tl.arange(0, BLOCK_STREAM), offs_d, offs_dv, (bh // H).to(tl.int64), (bh % H).to(tl.int64)


@triton.jit
def _load_tile(ptr, rows, stride, cols, n_rows, n_cols, UPCAST: tl.constexpr, TRANS: tl.constexpr):
    # rows x cols of a row-major (n_rows, n_cols) matrix (cols x rows with TRANS: loaded
    # transposed, no tl.trans); out-of-range entries load as 0
    if TRANS:
        t = tl.load(
            ptr + rows[None, :] * stride + cols[:, None],
            mask=(rows[None, :] < n_rows) & (cols[:, None] < n_cols),
            other=0.0,
        )
    else:
        t = tl.load(
            ptr + rows[:, None] * stride + cols[None, :],
            mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols),
            other=0.0,
        )
    if UPCAST:
        t = t.to(tl.float32)
    return t


@triton.jit
def _kv_tiles(K, V, rows, skn, svn, offs_d, offs_dv, NK, D, DV, UPCAST: tl.constexpr, TRANS_K: tl.constexpr):
    # the K and V rows ``rows`` of one (batch, head); K transposed with TRANS_K
    k = _load_tile(K, rows, skn, offs_d, NK, D, UPCAST, TRANS_K)
    return k, _load_tile(V, rows, svn, offs_dv, NK, DV, UPCAST, False)


@triton.jit
def _store_tile(ptr, rows, stride, cols, n_rows, n_cols, x):
    # x into rows x cols of a row-major (n_rows, n_cols) matrix, in its dtype; edges masked
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    tl.store(ptr + rows[:, None] * stride + cols[None, :], x.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _sigmoid_scores(a, bt, scale2, bias2, PREC: tl.constexpr, TANH: tl.constexpr):
    # P = sigmoid(a bt * scale + bias). Unmasked: the caller zeroes the out-of-range rows/columns
    # it must not accumulate. The exp2 form costs two special-function ops per score (ex2, and
    # the reciprocal inside div.full), the tanh form one: P = 1/2 + tanh(x/2)/2 (score_constants).
    s = tl.dot(a, bt, input_precision=PREC)
    if TANH:  # scale2/bias2 are scale/2, bias/2; tanh.approx: max relative error 2^-11 (PTX ISA)
        t = tl.inline_asm_elementwise(
            "tanh.approx.f32 $0, $1;", "=f,f", [s * scale2 + bias2], dtype=tl.float32, is_pure=True, pack=1
        )
        return 0.5 + 0.5 * t
    return 1.0 / (1.0 + tl.exp2(-(s * scale2 + bias2)))  # scale2/bias2 pre-multiplied by log2(e)


@triton.jit
def _fwd_kernel(
    Q, K, V, O, scale2, bias2, sqb, sqh, sqn, skb, skh, skn, svb, svh, svn, sob, soh, son, H, NQ, NK,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, UPCAST: tl.constexpr, PREC: tl.constexpr,
    TANH: tl.constexpr,
):  # fmt: skip
    # One Q tile per program, streaming K/V tiles.
    offs_m, offs_n, offs_d, offs_dv, b, h = _program(H, BLOCK_M, BLOCK_N, BLOCK_D, BLOCK_DV)
    K += b * skb + h * skh
    V += b * svb + h * svh
    q = _load_tile(Q + b * sqb + h * sqh, offs_m, sqn, offs_d, NQ, D, UPCAST, False)
    acc = tl.zeros((BLOCK_M, BLOCK_DV), dtype=tl.float32)
    for start_n in range(0, NK, BLOCK_N):
        cols = start_n + offs_n
        # K loaded transposed (BLOCK_D, BLOCK_N); out-of-range keys load 0 and are masked in P
        kt, v = _kv_tiles(K, V, cols, skn, svn, offs_d, offs_dv, NK, D, DV, UPCAST, True)
        p = tl.where(cols[None, :] < NK, _sigmoid_scores(q, kt, scale2, bias2, PREC, TANH), 0.0)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PREC)
    _store_tile(O + b * sob + h * soh, offs_m, son, offs_dv, NQ, DV, acc)


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, DK, DV_, scale, scale2, bias2,
    sqb, sqh, sqn, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdon, H, NQ, NK,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, UPCAST: tl.constexpr, PREC: tl.constexpr,
    TANH: tl.constexpr,
):  # fmt: skip
    # One K/V tile per program, streaming all Q/dO tiles; works on transposed scores S^T.
    # dK, dV are written with the strides of K, V (the wrapper allocates them alike).
    offs_n, offs_m, offs_d, offs_dv, b, h = _program(H, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV)
    k, v = _kv_tiles(
        K + b * skb + h * skh, V + b * svb + h * svh, offs_n, skn, svn, offs_d, offs_dv, NK, D, DV, UPCAST, False
    )
    Q += b * sqb + h * sqh
    DO += b * sdob + h * sdoh
    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
    for start_m in range(0, NQ, BLOCK_M):
        rows = start_m + offs_m
        q = _load_tile(Q, rows, sqn, offs_d, NQ, D, UPCAST, False)
        do = _load_tile(DO, rows, sdon, offs_dv, NQ, DV, UPCAST, False)
        pt = _sigmoid_scores(k, tl.trans(q), scale2, bias2, PREC, TANH)
        pt = tl.where((offs_n[:, None] < NK) & (rows[None, :] < NQ), pt, 0.0)
        dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=PREC)
        dpt = tl.dot(v, tl.trans(do), input_precision=PREC)
        dst = dpt * pt * (1.0 - pt)
        dk = tl.dot(dst.to(q.dtype), q, dk, input_precision=PREC)
    _store_tile(DK + b * skb + h * skh, offs_n, skn, offs_d, NK, D, dk * scale)
    _store_tile(DV_ + b * svb + h * svh, offs_n, svn, offs_dv, NK, DV, dv)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, DQ, scale, scale2, bias2,
    sqb, sqh, sqn, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdon, H, NQ, NK,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, UPCAST: tl.constexpr, PREC: tl.constexpr,
    TANH: tl.constexpr,
):  # fmt: skip
    # One Q tile per program, streaming K/V tiles; dQ is written with the strides of Q.
    offs_m, offs_n, offs_d, offs_dv, b, h = _program(H, BLOCK_M, BLOCK_N, BLOCK_D, BLOCK_DV)
    q = _load_tile(Q + b * sqb + h * sqh, offs_m, sqn, offs_d, NQ, D, UPCAST, False)
    do = _load_tile(DO + b * sdob + h * sdoh, offs_m, sdon, offs_dv, NQ, DV, UPCAST, False)
    K += b * skb + h * skh
    V += b * svb + h * svh
    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start_n in range(0, NK, BLOCK_N):
        cols = start_n + offs_n
        k, v = _kv_tiles(K, V, cols, skn, svn, offs_d, offs_dv, NK, D, DV, UPCAST, False)
        p = _sigmoid_scores(q, tl.trans(k), scale2, bias2, PREC, TANH)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = tl.where(cols[None, :] < NK, dp * p * (1.0 - p), 0.0)
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PREC)
    _store_tile(DQ + b * sqb + h * sqh, offs_m, sqn, offs_d, NQ, D, dq * scale)


KERNELS = {"fwd": _fwd_kernel, "bwd_dkdv": _bwd_dkdv_kernel, "bwd_dq": _bwd_dq_kernel}


def interpreted() -> bool:
    """True when the kernels were decorated under TRITON_INTERPRET=1 (run on CPU tensors)."""
    return not isinstance(_fwd_kernel, triton.runtime.jit.JITFunction)


def block_config(kernel: str, d: int, dtype: torch.dtype) -> dict:
    """Tile sizes, warps and pipeline stages per kernel, head dim and dtype (no autotuning).

    Chosen so every kernel compiles without register spills at d <= 128 for sm_80/sm_90
    (see ``scripts/aot_report.py``); fp32 tiles take twice the registers, so they are halved.
    """
    big = d > 64 or dtype == torch.float32
    if kernel == "fwd":
        m, n, warps, stages = (128, 64, 8, 2) if big else (128, 64, 4, 3)
    else:  # bwd_dkdv / bwd_dq hold two fp32 accumulators or more operands: smaller tiles
        m, n, warps, stages = (64, 64, 8, 2) if big else (64, 64, 4, 2)
    if d > 128:
        m, n = m // 2, n // 2
    if dtype == torch.float32:
        n = n // 2 if kernel == "fwd" else n
        m = m // 2 if kernel != "fwd" else m
    return dict(BLOCK_M=m, BLOCK_N=n, num_warps=warps, num_stages=stages)


def tanh_sigmoid(dtype: torch.dtype) -> bool:
    """Whether the kernels compute P by the one-instruction tanh form (``FLASH_SIGMOID_TANH=1``).

    Off by default until timed on a GPU: on the H200, the exp2 form left the kernels at 1.7-2.3x
    SDPA's time at d = 64, where the special-function unit (16 ops per clock per SM against the
    tensor cores' ~4096 flops) bounds a tile at two ops per score and matches them at one. bf16
    only: with P ~ 1/n near 1/2 + tanh/2 at tanh ~ -1, tanh.approx's 2^-11 relative error is
    P's absolute error, which in the worst case fits the check's bf16 rule but not fp16's
    (tests/kernels/test_tanh_sigmoid.py). The interpreter cannot run inline PTX.
    """
    return env.choice("FLASH_SIGMOID_TANH", "0") == "1" and dtype == torch.bfloat16 and not interpreted()


def score_constants(scale: float, bias: float, tanh: bool) -> tuple[float, float]:
    """(scale2, bias2) for the kernels' argument x = s * scale2 + bias2: halved for
    P = 1/2 + tanh(x)/2, times log2(e) for P = 1 / (1 + exp2(-x))."""
    factor = 0.5 if tanh else LOG2E
    return scale * factor, bias * factor


def _meta(kernel: str, q: Tensor, v: Tensor) -> tuple[dict, dict]:
    d, dv = q.shape[-1], v.shape[-1]
    cfg = block_config(kernel, max(d, dv), q.dtype)
    launch = dict(num_warps=cfg.pop("num_warps"), num_stages=cfg.pop("num_stages"))
    tf32 = torch.backends.cuda.matmul.allow_tf32 and q.dtype == torch.float32
    const = dict(
        D=d,
        DV=dv,
        BLOCK_D=max(16, triton.next_power_of_2(d)),
        BLOCK_DV=max(16, triton.next_power_of_2(dv)),
        UPCAST=interpreted(),
        PREC="tf32" if (tf32 or q.dtype != torch.float32) else "ieee",
        TANH=tanh_sigmoid(q.dtype),
        **cfg,
    )
    return const, launch


def _lastdim_contiguous(t: Tensor) -> Tensor:
    # kernels assume unit stride on the head dim; other strides are passed through
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(*ts: Tensor) -> tuple[int, ...]:
    # (batch, head, row) strides of each tensor in turn: the kernels' s*b, s*h, s*n arguments
    return tuple(s for t in ts for s in t.stride()[:3])


def _launch(kernel: str, tensors: tuple[Tensor, ...], args: tuple, n: int, block: str = "BLOCK_M") -> None:
    # one program per ``block`` of the n rows it owns (q's or k's), per (batch, head)
    q, v = tensors[0], tensors[2]
    const, launch = _meta(kernel, q, v)
    grid = (triton.cdiv(n, const[block]), q.shape[0] * q.shape[1])
    KERNELS[kernel][grid](*tensors, *args, **const, **launch)


def fwd_args(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: float, bias: float) -> tuple:
    """The forward kernel's scalar arguments, in its signature's order."""
    H, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    return (*score_constants(scale, bias, tanh_sigmoid(q.dtype)), *_strides(q, k, v, out), H, nq, nk)


def bwd_args(q: Tensor, k: Tensor, v: Tensor, do: Tensor, scale: float, bias: float) -> tuple:
    """Both backward kernels' scalar arguments, in their signatures' order."""
    H, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    return (scale, *score_constants(scale, bias, tanh_sigmoid(q.dtype)), *_strides(q, k, v, do), H, nq, nk)


def forward(q: Tensor, k: Tensor, v: Tensor, scale: float, bias: float) -> Tensor:
    q, k, v = (_lastdim_contiguous(t) for t in (q, k, v))
    B, H, nq, _ = q.shape
    out = q.new_empty(B, H, nq, v.shape[-1])
    _launch("fwd", (q, k, v, out), fwd_args(q, k, v, out, scale, bias), nq)
    return out


def backward(do: Tensor, q: Tensor, k: Tensor, v: Tensor, scale: float, bias: float) -> tuple[Tensor, Tensor, Tensor]:
    # gradients are written with the strides of q, k, v: make those contiguous (an O(n d)
    # copy only for strided views) so the outputs are too, as the registered fake promises
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    do = _lastdim_contiguous(do)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    args = bwd_args(q, k, v, do, scale, bias)
    _launch("bwd_dkdv", (q, k, v, do, dk, dv), args, k.shape[2], block="BLOCK_N")
    _launch("bwd_dq", (q, k, v, do, dq), args, q.shape[2])
    return dq, dk, dv


# ---- ahead-of-time compilation (no GPU needed): cubin, PTX, registers and spills ----------

_TL = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def aot_compile(kernel: str, cc: int, dtype: torch.dtype, d: int, tanh: bool | None = None):
    """Compile one kernel for ``sm_<cc>`` as the JIT would specialise it for contiguous
    (B, H, n, d) tensors (pointers and strides divisible by 16); ``tanh`` overrides the
    environment's choice of sigmoid form."""
    fn = KERNELS[kernel]
    if not isinstance(fn, triton.runtime.jit.JITFunction):
        raise RuntimeError("aot_compile needs the kernels decorated without TRITON_INTERPRET=1")
    q = torch.empty(1, 1, 1, d, dtype=dtype, device="meta")
    const, launch = _meta(kernel, q, q)
    const["UPCAST"] = False
    if tanh is not None:
        const["TANH"] = tanh
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in const:
            sig[name] = "constexpr"
        elif name in ("H", "NQ", "NK"):
            sig[name] = "i32"
        elif name[0].isupper():  # tensors
            sig[name] = "*" + _TL[dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name.startswith("s") and name not in ("scale", "scale2"):  # strides
            sig[name] = "i32"
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[name] = "fp32"
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs)
    target = triton.backends.compiler.GPUTarget("cuda", cc, 32)
    return triton.compile(src, target=target, options=launch)


def ptxas_path() -> str | None:
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    return path if os.access(path, os.X_OK) else None


def ptxas_usage(ptx: str, cc: int) -> tuple[int, int]:
    """(registers per thread, spill-store bytes) from the ptxas shipped inside triton."""
    arch = f"sm_{cc}a" if cc >= 90 else f"sm_{cc}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        res = subprocess.run(
            [ptxas_path(), "-v", "--gpu-name", arch, src, "-o", os.path.join(tmp, "kernel.cubin")],
            capture_output=True,
            text=True,
            check=True,
        )
    log = res.stdout + res.stderr
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = int(re.search(r"(\d+) bytes spill stores", log).group(1))
    return regs, spills


def aot_report(archs=(80, 90), dtypes=(torch.float16, torch.bfloat16), dims=(64, 128)) -> list[dict]:
    """One row per (kernel, arch, dtype, d): registers, spills, whether wgmma is used."""
    rows = []
    for cc, dtype, d, name in itertools.product(archs, dtypes, dims, KERNELS):
        ck = aot_compile(name, cc, dtype, d)
        regs, spills = ptxas_usage(ck.asm["ptx"], cc)
        wgmma = "wgmma" in ck.asm["ptx"]
        cfg = block_config(name, d, dtype)
        rows.append(
            dict(kernel=name, arch=f"sm_{cc}", dtype=_TL[dtype], d=d, regs=regs, spills=spills, wgmma=wgmma, **cfg)
        )
    return rows


__all__ = [
    "forward",
    "backward",
    "fwd_args",
    "bwd_args",
    "block_config",
    "aot_compile",
    "ptxas_usage",
    "aot_report",
    "interpreted",
]
