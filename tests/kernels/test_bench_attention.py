"""scripts/bench_attention.py --floor: its CPU variants compute what their rows claim."""

from unittest import mock

import flash_sigmoid
import torch


def _run(variant, q, k, v):
    """out and grads of the CPU path under one --floor variant's patches."""
    with variant:
        out = flash_sigmoid.sigmoid_attention(q, k, v, backend="cpu")
        out.backward(torch.ones_like(out))
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    return out.detach(), grads


def _inputs(n):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, n, 16, generator=g, dtype=torch.float64).requires_grad_() for _ in range(3)]


def test_matmuls_only_is_the_bilinear_map_without_bias_or_sigmoid(load_script):
    # oracle: autograd through the same products with nothing between them
    q, k, v = _inputs(40)
    out, grads = _run(load_script("bench_attention").floor_variant("cpu, matmuls only"), q, k, v)
    ref = (q @ k.transpose(-1, -2) * 16**-0.5) @ v
    ref.backward(torch.ones_like(ref))
    torch.testing.assert_close(out, ref.detach())
    for got, t in zip(grads, (q, k, v)):
        torch.testing.assert_close(got, t.grad)


def test_p_kept_at_a_long_length_keeps_it_and_still_computes_sigmoid_attention(load_script):
    q, k, v = _inputs(300)  # past the ViT lengths the default keeps P at
    assert not flash_sigmoid.cpu.keeps_scores(300, 300)
    ref = flash_sigmoid.reference.sigmoid_attention(q, k, v)  # oracle: the materialised definition
    ref.backward(torch.ones_like(ref))
    ref_grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    with mock.patch.object(flash_sigmoid.cpu, "backward", wraps=flash_sigmoid.cpu.backward) as backward:
        out, grads = _run(load_script("bench_attention").floor_variant("cpu, P kept"), q, k, v)
    assert backward.call_args.kwargs["scores"] is not None  # P came from the forward
    torch.testing.assert_close(out, ref.detach())
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
