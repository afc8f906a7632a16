"""FlashSigmoid: sigmoid attention, out = sigmoid(q k^T * scale + b) v, b = -log(n_keys).

Ramapuram et al., "Theory, Analysis, and Best Practices for Sigmoid Self-Attention", ICLR 2025,
https://arxiv.org/abs/2409.04431: elementwise sigmoid instead of the row softmax, with the bias
b = -log(n) keeping early attention norms in check; scale defaults to 1/sqrt(d).

One entry point, ``sigmoid_attention(q, k, v, bias=None, scale=None, backend=None)``, for
tensors shaped (batch, heads, n, d). Usable without ssl_suite.

Backends: "triton" (CUDA tensors; CPU tensors too when ``TRITON_INTERPRET=1`` was set before
import), "cpu" (blocked, O(n) memory), "reference" (materialised PyTorch). By default CUDA ->
triton and everything else -> cpu; ``backend=`` or the ``FLASH_SIGMOID_BACKEND`` environment
variable forces one. The fast paths are torch.library custom ops with fake and autograd
registrations, so ``torch.compile`` treats them as opaque nodes instead of tracing their loops.

Mixed precision: under autocast (CUDA or CPU) q, k and v are cast to the autocast dtype before
the kernel runs. CUDA autocast runs LayerNorm in fp32, so a QK-normed q and k arrive in fp32
beside a bf16 v; the kernels take one dtype. Outside autocast, mixed dtypes are an error.
If the Triton kernels fail to compile or launch, the call falls back to the blocked PyTorch
path (plain torch ops: it runs on any device) with one warning.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from . import cpu, reference
from .reference import check_inputs, default_bias, resolve

__all__ = ["sigmoid_attention", "default_bias", "reference", "BACKENDS", "autocast_inputs"]

BACKENDS = ("reference", "cpu", "triton")


def _impl(backend: str) -> ModuleType:
    if backend == "triton":
        from . import triton_kernels  # imported lazily: needs triton, reads TRITON_INTERPRET

        return triton_kernels
    return cpu


_triton_failure: list[str] = []  # the first error of the Triton path in this process, if any


def _run(fn: str, backend: str, *args: Any) -> Any:
    """``forward``/``backward`` of the backend; a Triton path that cannot compile or launch
    falls back to the blocked path (warned once per process), never a crash mid-training."""
    if backend == "triton" and not _triton_failure:
        try:
            return getattr(_impl("triton"), fn)(*args)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # triton.CompilationError, no driver, an unsupported GPU, ...
            _triton_failure.append(
                f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            )
            warnings.warn(
                f"flash_sigmoid: the Triton kernel failed ({_triton_failure[0]}); using the blocked "
                "PyTorch path from now on (correct, slower)",
                RuntimeWarning,
                stacklevel=2,
            )
    return getattr(cpu, fn)(*args)


# ``keep`` (CPU path, a call that needs gradients, ViT lengths: ``cpu.keeps_scores``) returns P as a
# second output for the backward; otherwise that output is empty and the backward recomputes P.
@torch.library.custom_op("flash_sigmoid::attn_fwd", mutates_args=())
def _attn_fwd(
    q: Tensor, k: Tensor, v: Tensor, scale: float, bias: float, backend: str, keep: bool
) -> tuple[Tensor, Tensor]:
    if keep:
        scores = cpu.new_scores(q, k)
        return cpu.forward(q, k, v, scale, bias, scores=scores), scores
    return _run("forward", backend, q, k, v, scale, bias), q.new_empty(0)


@_attn_fwd.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, scale: float, bias: float, backend: str, keep: bool) -> tuple[Tensor, Tensor]:
    return q.new_empty(*q.shape[:-1], v.shape[-1]), cpu.new_scores(q, k) if keep else q.new_empty(0)


@torch.library.custom_op("flash_sigmoid::attn_bwd", mutates_args=())
def _attn_bwd(
    do: Tensor, q: Tensor, k: Tensor, v: Tensor, scores: Tensor, scale: float, bias: float, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    if scores.numel():
        return cpu.backward(do, q, k, v, scale, bias, scores=scores)
    return _run("backward", backend, do, q, k, v, scale, bias)


@_attn_bwd.register_fake
def _(
    do: Tensor, q: Tensor, k: Tensor, v: Tensor, scores: Tensor, scale: float, bias: float, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)  # contiguous


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    q, k, v, ctx.scale, ctx.bias, ctx.backend, _ = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(q, k, v, output[1])  # P (n^2) only where ``keep`` asked for it


def _backward(ctx: Any, do: Tensor, _: Tensor) -> tuple[Tensor | None, ...]:
    q, k, v, scores = ctx.saved_tensors
    dq, dk, dv = _attn_bwd(do, q, k, v, scores, ctx.scale, ctx.bias, ctx.backend)
    return dq, dk, dv, None, None, None, None


_attn_fwd.register_autograd(_backward, setup_context=_setup_context)


def autocast_inputs(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in the autocast dtype of their device when autocast is on there (as autocast
    casts: every floating type but fp64); unchanged otherwise."""
    device_type = tensors[0].device.type
    if not (torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(t if t.dtype == torch.float64 else t.to(dtype) for t in tensors)


def _autocast_fwd(
    q: Tensor, k: Tensor, v: Tensor, scale: float, bias: float, backend: str, keep: bool
) -> tuple[Tensor, Tensor]:
    q, k, v = autocast_inputs(q, k, v)
    with torch.autocast(q.device.type, enabled=False):
        return _attn_fwd(q, k, v, scale, bias, backend, keep)


# Autocast rules for the op itself (direct calls, torch.compile graphs). Not
# torch.library.register_autocast: it casts to one fixed dtype, and the active autocast dtype
# (bf16 or fp16) is what q, k, v must match.
_autocast_lib = torch.library.Library("flash_sigmoid", "IMPL")
for _key in ("AutocastCPU", "AutocastCUDA"):
    _autocast_lib.impl("attn_fwd", _autocast_fwd, _key)


def pick_backend(q: Tensor, backend: str | None = None) -> str:
    """The backend a call would use: the argument, else FLASH_SIGMOID_BACKEND, else by device."""
    backend = backend or os.environ.get("FLASH_SIGMOID_BACKEND") or ("triton" if q.is_cuda else "cpu")
    if backend not in BACKENDS:
        raise ValueError(f"sigmoid_attention: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpu" and q.is_cuda:
        raise ValueError("sigmoid_attention: backend 'cpu' needs CPU tensors, got CUDA tensors")
    if backend == "triton" and not q.is_cuda and not _impl("triton").interpreted():
        raise ValueError(
            "sigmoid_attention: backend 'triton' needs CUDA tensors, or CPU tensors "
            "with TRITON_INTERPRET=1 set before flash_sigmoid.triton_kernels is imported"
        )
    return backend


def sigmoid_attention(
    q: Tensor, k: Tensor, v: Tensor, bias: float | None = None, scale: float | None = None, backend: str | None = None
) -> Tensor:
    """Sigmoid attention with autograd; see ``reference.sigmoid_attention`` for the definition.

    q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv) -> (B, H, Nq, Dv). ``bias`` defaults to
    -log(Nk) and ``scale`` to D^-1/2. Invalid inputs raise one ``ValueError``. Under autocast
    the inputs are cast to its dtype first (see the module docstring).
    """
    if all(isinstance(t, Tensor) for t in (q, k, v)):
        q, k, v = autocast_inputs(q, k, v)
    check_inputs(q, k, v)
    backend = pick_backend(q, backend)
    if backend == "reference":
        return reference.sigmoid_attention(q, k, v, bias=bias, scale=scale)
    bias, scale = resolve(q, k, bias, scale)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    keep = False
    if backend == "cpu" and needs_grad:
        keep = cpu.keeps_scores(q.shape[-2], k.shape[-2])
        # The blocks work on (B*H, n, d) views, which strided inputs (timm's q, k, v are views of
        # one qkv tensor) get by copying; copying here, once, makes the tensors saved for the
        # backward the contiguous ones, so the backward does not copy them again.
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    return _attn_fwd(q, k, v, scale, bias, backend, keep)[0]
