import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss

from ssl_suite.losses import OBJECTIVES, PolyViewLoss


def loops(z, tau, objective):
    """The formulas of the module docstring, one term at a time (float64, plain Python loops)."""
    z = F.normalize(z.double(), dim=-1)
    K, M, _ = z.shape
    s = lambda i, a, j, g: float(z[i, a] @ z[j, g]) / tau  # noqa: E731
    total = 0.0
    for i in range(K):
        for a in range(M):
            ls = []
            for b in range(M):
                if b == a:
                    continue
                if objective == "multicrop":
                    negs = [s(i, a, j, g) for j in range(K) if j != i for g in (a, b)]
                else:
                    negs = [s(i, a, j, g) for j in range(K) if j != i for g in range(M)]
                ls.append(s(i, a, i, b) - math.log(math.exp(s(i, a, i, b)) + sum(map(math.exp, negs))))
            if objective == "arithmetic":
                total += math.log(sum(map(math.exp, ls)) / (M - 1))
            else:
                total += sum(ls) / (M - 1)
    return -total / (K * M)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_hand_computed_k3_m3(objective):
    z = torch.randn(3, 3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = PolyViewLoss(objective, temperature=0.5)(z)
    assert got.item() == pytest.approx(loops(z, 0.5, objective), rel=1e-10)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_m2_equals_lightly_ntxent(objective):
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(8, 16, generator=g, dtype=torch.float64), torch.randn(8, 16, generator=g, dtype=torch.float64)
    ours = PolyViewLoss(objective, temperature=0.2)([z0, z1])
    torch.testing.assert_close(ours, NTXentLoss(temperature=0.2)(z0, z1))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_invariant_to_sample_order(objective):
    z = torch.randn(6, 4, 8, generator=torch.Generator().manual_seed(3))
    loss = PolyViewLoss(objective)
    torch.testing.assert_close(loss(z), loss(z[torch.randperm(6)]))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gradcheck_float64(objective):
    z = torch.randn(3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(PolyViewLoss(objective, temperature=0.7), (z,))


def test_arithmetic_bounds_geometric():
    # Jensen: log-mean-exp >= mean, so the arithmetic loss is at most the geometric one.
    z = torch.randn(5, 4, 8, generator=torch.Generator().manual_seed(4))
    assert PolyViewLoss("arithmetic")(z) <= PolyViewLoss("geometric")(z) + 1e-6


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: PolyViewLoss("geometric")(torch.randn(4, 1, 8)), r"M >= 2"),
        (lambda: PolyViewLoss("geometric", temperature=0.0), r"temperature must be positive"),
        (lambda: PolyViewLoss("harmonic"), r"geometric, arithmetic, multicrop"),
        (lambda: PolyViewLoss()([torch.randn(4, 8), torch.randn(5, 8)]), r"one shape"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
