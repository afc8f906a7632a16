"""Sigmoid attention for CPUs: blocked over (heads, queries), O(n * chunk) memory.

The forward computes sigmoid(q k^T * scale + b) v one block of rows at a time and the backward
recomputes each block's P from q and k, so only q, k, v are saved: memory grows with n, not n^2.
At ViT lengths (n <= 256, ``keeps_scores``) a training call instead writes P into one tensor the
backward reuses, skipping one of its five matrix products and a sigmoid pass, for about as much
memory as the block's MLP activations (+20% at ViT-S/16; ``FLASH_SIGMOID_CPU_KEEP_P=0`` turns it off).
Blocks hold about ``block_elements(nq, nk)`` scores and reuse one workspace per call: fresh
multi-MiB tensors per block would each be page-faulted in again. The elementwise steps run in
place, one pass each where ATen has the op: sigmoid_ for P (in bf16 the bias rides in the product's
accumulator; in fp32 it is one add_ before), and ATen's sigmoid backward for dS = dP * P * (1 - P).
These eager passes are as fast as torch.compile's fusions of the same steps (forward+backward in
bf16 at n = 1024: 0.84-0.90x SDPA, as the fused path's 0.83-0.95x), with no compiling.
bf16 inputs stay bf16 where the CPU multiplies bf16 natively (AMX / AVX512-BF16, as oneDNN
reports): the matmuls run in bf16 with fp32 accumulation inside each product, like the Triton
kernels' (whose P and dS are rounded to bf16 before their products too), and dK/dV gather
across row blocks in fp32. Elsewhere, and for fp16, inputs are upcast to fp32 once (O(n d)).
``FLASH_SIGMOID_CPU_BF16=0`` forces the upcast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import env

# Scores per block. Each block costs ~8 parallel regions; on an oversubscribed CPU (other
# processes, DDP ranks with several threads each) every region waits for a time slice, so blocks
# stay large: 1 << 22 scores (16 MiB in fp32) in general. Short sequences, whose whole heads fit
# a 1 MiB block (ViT lengths, n <= 256), use 1 << 18 instead: the block stays in L2 between the
# matmul and the sigmoid. Measured on 2 idle cores (forward+backward / SDPA): ViT-S/16 shape
# 32x6x197x64 0.91 -> 0.75; at n = 1024 small blocks lose (1.27 -> 1.41), hence the split.
# FLASH_SIGMOID_CPU_BLOCK fixes one size for every shape.
_FIXED_BLOCK = env.positive_int("FLASH_SIGMOID_CPU_BLOCK")
CHUNK_ELEMENTS = _FIXED_BLOCK or 1 << 22
SHORT_BLOCK_ELEMENTS = 1 << 18


def _native_bf16() -> bool:
    if env.choice("FLASH_SIGMOID_CPU_BF16", "1") == "0":
        return False
    try:  # oneDNN's own test for bf16 instructions (private, hence the fallback)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


NATIVE_BF16 = _native_bf16()


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the blocks compute in for inputs of ``dtype`` (see the module docstring)."""
    if dtype in (torch.float32, torch.float64) or (dtype == torch.bfloat16 and NATIVE_BF16):
        return dtype
    return torch.float32


KEEP_SCORES = env.choice("FLASH_SIGMOID_CPU_KEEP_P", "1") == "1"


def _short(nq: int, nk: int) -> bool:
    """ViT lengths: a head's scores fit a quarter of a short block (n <= 256)."""
    return nq * nk <= SHORT_BLOCK_ELEMENTS // 4


def keeps_scores(nq: int, nk: int) -> bool:
    """Whether a call that needs gradients saves P for the backward (ViT lengths; see above)."""
    return KEEP_SCORES and _short(nq, nk)


def new_scores(q: Tensor, k: Tensor) -> Tensor:
    """An uninitialised (B*H, Nq, Nk) tensor in the compute dtype, for ``forward(..., scores=)``."""
    return q.new_empty(q.shape[0] * q.shape[1], q.shape[2], k.shape[2], dtype=compute_dtype(q.dtype))


def block_elements(nq: int, nk: int) -> int:
    """Scores per block for this shape (see above)."""
    if _FIXED_BLOCK is None and _short(nq, nk):
        return SHORT_BLOCK_ELEMENTS
    return CHUNK_ELEMENTS


def _probabilities(p: Tensor, q: Tensor, k: Tensor, scale: float, bias: float) -> None:
    """p <- sigmoid(q k^T * scale + bias) for one block."""
    if p.dtype == torch.bfloat16:
        # the bias joins the product's fp32 accumulator (beta = 1 on a broadcast bias): rounded once,
        # and no bf16 pass of its own (each converts every score twice; the add took as long as the sigmoid)
        torch.baddbmm(p.new_full((1, 1, 1), bias).expand_as(p), q, k.transpose(1, 2), alpha=scale, out=p)
    else:  # in fp32 a separate add is the faster of the two (a beta = 1 product rereads p)
        torch.baddbmm(p, q, k.transpose(1, 2), beta=0, alpha=scale, out=p)
        p.add_(bias)
    p.sigmoid_()


def _dsigmoid(dp: Tensor, p: Tensor) -> None:
    # dp <- dS = dP * P * (1 - P) in one pass (ATen's sigmoid backward is this product), p unchanged:
    # a saved P is read again by a retained graph
    torch.ops.aten.sigmoid_backward.grad_input(dp, p, grad_input=dp)


def _blocks(bh: int, nq: int, nk: int, budget: int) -> list[tuple[slice, slice]]:
    """(head slice, query slice) pairs covering (bh, nq), each about ``budget`` scores."""
    rows = max(1, budget // nk)
    if rows >= nq:  # whole heads fit: group them
        g = rows // nq
        return [(slice(h, min(bh, h + g)), slice(0, nq)) for h in range(0, bh, g)]
    return [(slice(h, h + 1), slice(i, min(nq, i + rows))) for h in range(bh) for i in range(0, nq, rows)]


def _scores(ws: Tensor, hs: slice, rs: slice, nk: int) -> Tensor:
    # a (heads, rows, nk) view at the start of the workspace
    g, m = hs.stop - hs.start, rs.stop - rs.start
    return ws[: g * m * nk].view(g, m, nk)


def _flat(t: Tensor) -> Tensor:
    # (B, H, n, d) -> (B*H, n, d) in the compute dtype
    return t.reshape(-1, t.shape[-2], t.shape[-1]).to(compute_dtype(t.dtype))


def forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float,
    bias: float,
    budget: int | None = None,
    scores: Tensor | None = None,
) -> Tensor:
    """out; with ``scores`` (from ``new_scores``) P is left there for ``backward``."""
    q3, k3, v3 = _flat(q), _flat(k), _flat(v)
    nq, nk = q3.shape[1], k3.shape[1]
    out = q3.new_empty(q3.shape[0], nq, v3.shape[-1])
    blocks = _blocks(q3.shape[0], nq, nk, budget or block_elements(nq, nk))
    ws = q3.new_empty(0 if scores is not None else _scores_size(blocks, nk))
    with torch.no_grad():
        for hs, rs in blocks:
            s = scores[hs, rs] if scores is not None else _scores(ws, hs, rs, nk)
            _probabilities(s, q3[hs, rs], k3[hs], scale, bias)
            torch.bmm(s, v3[hs], out=out[hs, rs])
    return out.view(*q.shape[:-1], v.shape[-1]).to(q.dtype)


def backward(
    do: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float,
    bias: float,
    budget: int | None = None,
    scores: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """dq, dk, dv; P is read from ``scores`` (the forward's, left unchanged) when given, else
    recomputed block by block."""
    q3, k3, v3, do3 = _flat(q), _flat(k), _flat(v), _flat(do)
    nq, nk = q3.shape[1], k3.shape[1]
    # dK/dV sum over row blocks: in fp32 for bf16 (each block's product lands in ``part`` first)
    acc = torch.float64 if q3.dtype == torch.float64 else torch.float32
    dq = torch.empty_like(q3)
    dk, dv = torch.empty_like(k3, dtype=acc), torch.empty_like(v3, dtype=acc)
    blocks = _blocks(q3.shape[0], nq, nk, budget or block_elements(nq, nk))
    size = _scores_size(blocks, nk)
    ws_p, ws_dp = q3.new_empty(0 if scores is not None else size), q3.new_empty(size)
    part = None if acc == q3.dtype else q3.new_empty(_heads_per_block(blocks) * nk * max(q3.shape[-1], v3.shape[-1]))
    with torch.no_grad():
        for hs, rs in blocks:
            dp = _scores(ws_dp, hs, rs, nk)
            q_b, do_b, k_b = q3[hs, rs], do3[hs, rs], k3[hs]
            first = rs.start == 0  # the first block of a head writes dK/dV, later ones add
            if scores is not None:
                p = scores[hs, rs]
            else:
                p = _scores(ws_p, hs, rs, nk)
                _probabilities(p, q_b, k_b, scale, bias)
            _gather(dv[hs], p.transpose(1, 2), do_b, 1.0, first, part)  # dV = P^T dO, before p is reused
            torch.bmm(do_b, v3[hs].transpose(1, 2), out=dp)
            _dsigmoid(dp, p)
            torch.baddbmm(dq[hs, rs], dp, k_b, beta=0, alpha=scale, out=dq[hs, rs])
            _gather(dk[hs], dp.transpose(1, 2), q_b, scale, first, part)
    return (dq.view(q.shape).to(q.dtype), dk.view(k.shape).to(k.dtype), dv.view(v.shape).to(v.dtype))


def _gather(acc: Tensor, a: Tensor, b: Tensor, alpha: float, first: bool, part: Tensor | None) -> None:
    """acc (=, or += after the first block) alpha * a @ b; via ``part`` when acc is wider than a."""
    if part is None:
        acc.baddbmm_(a, b, beta=0 if first else 1, alpha=alpha)
        return
    prod = part[: acc.numel()].view(acc.shape)
    torch.baddbmm(prod, a, b, beta=0, alpha=alpha, out=prod)
    if first:
        acc.copy_(prod)
    else:
        acc.add_(prod)


def _heads_per_block(blocks: list[tuple[slice, slice]]) -> int:
    return max((hs.stop - hs.start for hs, _ in blocks), default=0)


def _scores_size(blocks: list[tuple[slice, slice]], nk: int) -> int:
    return max(((hs.stop - hs.start) * (rs.stop - rs.start) for hs, rs in blocks), default=0) * nk
