"""The kernels' opt-in tanh form of the sigmoid (``FLASH_SIGMOID_TANH=1``): one special-function
op per score instead of two. Without a GPU, three things are checked here: the form compiles
for sm_80/sm_90 to tanh.approx with neither ex2 nor a division left in the scores and without
spills; the constants it takes give the same sigmoid; and its documented worst-case error
(tanh.approx.f32: relative error at most 2^-11, PTX ISA, "tanh") fits the GPU check's rule in
bf16 -- a kernel computing P that badly would still pass ``flash_sigmoid.check``. Not in fp16:
with the bias -log n, P ~ 1/n = 1/2 + tanh/2 with tanh near -1, so tanh's relative error is
P's absolute error (~2.4e-4, 5% of P at n = 197), and the worst case (every score off the same
way) puts the output 1.4-3.3x over fp16's bound on three of the five odd shapes."""

import math
import re

import pytest
import torch
from flash_sigmoid import check, reference

tk = pytest.importorskip("flash_sigmoid.triton_kernels")
TANH_REL_ERROR = 2.0**-11


def test_both_forms_give_the_same_sigmoid():
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    scale, bias = 0.125, -math.log(197)
    s2, b2 = tk.score_constants(scale, bias, tanh=False)
    t2, c2 = tk.score_constants(scale, bias, tanh=True)
    exp2_form = 1 / (1 + torch.exp2(-(x * s2 + b2)))
    tanh_form = 0.5 + 0.5 * torch.tanh(x * t2 + c2)
    torch.testing.assert_close(exp2_form, torch.sigmoid(x * scale + bias), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(tanh_form, torch.sigmoid(x * scale + bias), rtol=1e-12, atol=1e-15)


def test_the_tanh_form_is_opt_in_and_bf16_only(monkeypatch):
    monkeypatch.delenv("FLASH_SIGMOID_TANH", raising=False)
    assert not tk.tanh_sigmoid(torch.bfloat16)
    monkeypatch.setenv("FLASH_SIGMOID_TANH", "1")
    assert not tk.tanh_sigmoid(torch.float32) and not tk.tanh_sigmoid(torch.float16)  # see the docstring
    assert tk.tanh_sigmoid(torch.bfloat16) is not tk.interpreted()  # the interpreter runs no PTX


def _emulated_kernel(q, k, v, g, dtype, rel_error):
    """The kernel's arithmetic in float64 with its roundings: half inputs, fp32-accumulated
    products, P from a tanh off by ``rel_error`` (every score the same way: the worst case for
    the sums) and rounded to the input dtype before the P V and dS K products, as the kernels do."""
    q, k, v, g = (t.to(dtype).double().requires_grad_(t is not g) for t in (q, k, v, g))
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + reference.default_bias(k.shape[2])
    exact = torch.sigmoid(s)
    off = 0.5 + 0.5 * torch.tanh(s / 2).detach() * (1 + rel_error)
    p = exact + (off.to(dtype).double() - exact).detach()  # the value as computed, the exact slope
    out = p @ v
    out.backward(g)
    return [out.detach().to(dtype).double(), q.grad.to(dtype).double(), k.grad.to(dtype).double(),
            v.grad.to(dtype).double()]  # fmt: skip


@pytest.mark.parametrize("shape", check.ODD_SHAPES, ids=str)
def test_tanh_error_bound_fits_the_gpu_checks_rule_in_bf16(shape):
    dtype = "bf16"
    B, H, nq, nk, d = shape
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, n, d, generator=gen, dtype=torch.float64) for n in (nq, nk, nk))
    g = torch.randn(B, H, nq, d, generator=gen, dtype=torch.float64)
    exact = check._grads(reference.sigmoid_attention, q, k, v, g)
    ql, kl, vl = (t.to(check.DTYPES[dtype]) for t in (q, k, v))
    same = check._grads(reference.sigmoid_attention, ql, kl, vl, g)
    ref_err = [(a.double() - b).abs().max().item() for a, b in zip(same, exact)]

    def passes(rel_error: float) -> bool:
        got = _emulated_kernel(q, k, v, g, check.DTYPES[dtype], rel_error)
        errs = [(a - b).abs().max().item() for a, b in zip(got, exact)]
        return all(e <= 2 * r + check.FLOOR[dtype] for e, r in zip(errs, ref_err))

    assert passes(TANH_REL_ERROR) and passes(-TANH_REL_ERROR)
    if nk > 1:  # the rule does catch a P that is wrong enough (at n = 1, P ~ 1/2: tanh ~ 0)
        assert not passes(2**-5)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", sorted(tk.KERNELS))
@pytest.mark.parametrize("cc", [80, 90])
def test_tanh_form_compiles_to_one_special_function_op_per_score(kernel, cc):
    if tk.interpreted():
        pytest.skip("kernels were decorated under TRITON_INTERPRET=1: no AOT compile possible")
    ptx = tk.aot_compile(kernel, cc, torch.bfloat16, 64, tanh=True).asm["ptx"]
    exp2_ptx = tk.aot_compile(kernel, cc, torch.bfloat16, 64, tanh=False).asm["ptx"]
    count = lambda op, text: len(re.findall(rf"^\s+{op}\b", text, re.M))  # noqa: E731
    assert count(r"tanh\.approx\.f32", ptx) == count(r"ex2\.approx\.ftz\.f32", exp2_ptx) > 0
    assert count(r"ex2\.\S+", ptx) == 0 and count(r"div\.full\.f32", ptx) == 0
    if tk.ptxas_path() is not None:
        assert tk.ptxas_usage(ptx, cc)[1] == 0  # no spills
