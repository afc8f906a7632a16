"""Run the Triton kernels in Triton's interpreter and print their errors as JSON.

Started in a subprocess by test_flash_sigmoid_triton.py: TRITON_INTERPRET=1 is read when
``@triton.jit`` decorates, so it must be set before flash_sigmoid.triton_kernels is imported,
and other tests in the same process import flash_sigmoid without it.
"""

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
os.environ["FLASH_SIGMOID_BACKEND"] = "triton"  # exercises the env-var override too

import flash_sigmoid  # noqa: E402
import torch  # noqa: E402
from flash_sigmoid import reference  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def max_errors(q, k, v, g, fn):
    qq, kk, vv = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(qq, kk, vv)
    out.backward(g.to(out.dtype))
    return out, (qq.grad, kk.grad, vv.grad)


def run_case(nq, nk, d, dtype_name, seed=0):
    torch.manual_seed(seed)
    dtype = DTYPES[dtype_name]
    q = torch.randn(1, 2, nq, d, dtype=dtype)
    k = torch.randn(1, 2, nk, d, dtype=dtype)
    v = torch.randn(1, 2, nk, d, dtype=dtype)
    g = torch.randn(1, 2, nq, d)
    exact = max_errors(q.double(), k.double(), v.double(), g.double(), reference.sigmoid_attention)
    same = max_errors(q, k, v, g, reference.sigmoid_attention)
    kern = max_errors(q, k, v, g, flash_sigmoid.sigmoid_attention)  # backend from the env var

    def errs(res):
        out, grads = res
        return [(a.double() - b).abs().max().item() for a, b in zip((out, *grads), (exact[0], *exact[1]))]

    return dict(
        case=f"{nq}x{nk}-d{d}-{dtype_name}",
        kernel=errs(kern),
        reference=errs(same),
        backend=flash_sigmoid.pick_backend(q),
    )


if __name__ == "__main__":
    cases = [tuple(json.loads(c)) for c in sys.argv[1:]]
    print(json.dumps([run_case(*c) for c in cases]))
