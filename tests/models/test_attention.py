import math

import numpy as np
import pytest
import torch
from flash_sigmoid import reference
from timm.layers import Attention
from torch import nn

from ssl_suite.models import SigmoidAttention, set_attention


def formula(q, k, v, bias, scale):
    """out = sigmoid(q k^T * scale + b) v, written out in numpy float64."""
    q, k, v = (t.detach().double().numpy() for t in (q, k, v))
    logits = np.einsum("bhqd,bhkd->bhqk", q, k) * scale + bias
    return torch.from_numpy(np.einsum("bhqk,bhkd->bhqd", 1.0 / (1.0 + np.exp(-logits)), v))


@pytest.mark.parametrize("nq,nk,d", [(5, 7, 8), (17, 17, 16), (1, 3, 4)])
def test_reference_matches_formula_with_runtime_defaults(nq, nk, d):
    g = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(2, 3, nq, d, generator=g, dtype=torch.float64),
        torch.randn(2, 3, nk, d, generator=g, dtype=torch.float64),
    )
    v = torch.randn(2, 3, nk, d, generator=g, dtype=torch.float64)
    out = reference.sigmoid_attention(q, k, v)
    torch.testing.assert_close(out, formula(q, k, v, -math.log(nk), d**-0.5), rtol=1e-12, atol=1e-12)
    out = reference.sigmoid_attention(q, k, v, bias=0.3, scale=0.5)
    torch.testing.assert_close(out, formula(q, k, v, 0.3, 0.5), rtol=1e-12, atol=1e-12)


def test_reference_boolean_mask_zeroes_keys():
    q, k, v = (torch.randn(1, 1, 4, 8, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([True, True, False, True])
    out = reference.sigmoid_attention(q, k, v, bias=-1.0, attn_mask=mask)
    keep = mask.nonzero().squeeze(1)
    torch.testing.assert_close(out, formula(q, k[:, :, keep], v[:, :, keep], -1.0, 8**-0.5))


@pytest.mark.parametrize(
    "bad,match",
    [
        (lambda q: (q, q[..., :4], q), "head dims differ"),
        (lambda q: (q, q.double(), q), "dtypes differ"),
        (lambda q: (q.long(), q, q), "floating-point"),
        (lambda q: (q[0], q[0], q[0]), r"\(batch, heads, n, d\)"),
        (lambda q: (torch.randn(1, 1, 3, 300),) * 3, "at most 256"),
    ],
)
def test_reference_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        reference.sigmoid_attention(*bad(torch.randn(1, 2, 3, 8)))


def _pair(qk_norm=True):
    torch.manual_seed(0)
    stock = Attention(64, num_heads=4, qkv_bias=True, qk_norm=qk_norm, norm_layer=nn.LayerNorm)
    ours = SigmoidAttention(64, num_heads=4, qkv_bias=True, qk_norm=qk_norm, norm_layer=nn.LayerNorm)
    for p in stock.parameters():  # non-trivial norm weights, so QK-norm is exercised
        nn.init.normal_(p, std=0.2)
    ours.load_state_dict(stock.state_dict(), strict=True)
    return stock.eval(), ours.eval()


@pytest.mark.parametrize("qk_norm", [True, False])
def test_softmax_switch_equals_timm_attention(qk_norm):
    stock, ours = _pair(qk_norm)
    ours.set_attention("softmax")
    x = torch.randn(2, 11, 64)
    torch.testing.assert_close(ours(x), stock(x), rtol=1e-5, atol=1e-6)


def test_sigmoid_mode_uses_runtime_key_count():
    _, ours = _pair()
    for n in (5, 13):  # different n, different default bias -log(n)
        x = torch.randn(2, n, 64, dtype=torch.float64)
        ours.double()
        q, k, v = ours.qkv(x).reshape(2, n, 3, 4, 16).permute(2, 0, 3, 1, 4)
        q, k = ours.q_norm(q), ours.k_norm(k)
        expect = ours.proj(formula(q, k, v, -math.log(n), 16**-0.5).transpose(1, 2).reshape(2, n, 64))
        torch.testing.assert_close(ours(x), expect, rtol=1e-10, atol=1e-10)


def test_fixed_bias_option_and_bad_mode():
    _, ours = _pair()
    x = torch.randn(1, 6, 64)
    a = ours(x)
    ours.set_attention("sigmoid", sigmoid_bias=-math.log(6))
    torch.testing.assert_close(ours(x), a)
    ours.set_attention("sigmoid", sigmoid_bias=0.0)
    assert not torch.allclose(ours(x), a)
    with pytest.raises(ValueError, match="sigmoid, softmax|'sigmoid', 'softmax'"):
        set_attention(ours, "relu")
