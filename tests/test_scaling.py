"""The EMA scaling rule and the optimizers' batch-size rules, against closed forms."""

import math

import pytest
import torch
from torch import nn

from ssl_suite import scaling
from ssl_suite.ema import EMATarget
from ssl_suite.errors import UserError


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_kappa_ema_steps_equal_one_step_at_rho_power_kappa(k):
    torch.manual_seed(0)
    online = nn.Linear(5, 3)
    ema_many, ema_once = EMATarget(online, 0.9), EMATarget(online, 0.9)
    for p in ema_many.parameters():  # start the targets away from the online weights
        p.data.normal_()
    ema_once.load_state_dict(ema_many.state_dict())
    for _ in range(k):
        ema_many.update(online, 0.9)
    ema_once.update(online, scaling.scaled_momentum(0.9, k))
    for a, b in zip(ema_many.parameters(), ema_once.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k", [0.5, 1, 4])
def test_derived_hyperparameters(k):
    for name in ("sgd", "lars"):
        s = scaling.scale(name, 0.3, int(256 * k), 256)
        assert s.kappa == k and s.lr == pytest.approx(0.3 * k) and s.betas is None
    s = scaling.scale("adamw", 1e-3, int(256 * k), 256, betas=(0.9, 0.999), eps=1e-8)
    assert s.lr == pytest.approx(1e-3 * math.sqrt(k))
    assert s.betas == pytest.approx((1 - k * 0.1, 1 - k * 0.001))
    assert s.eps == pytest.approx(1e-8 / math.sqrt(k))
    off = scaling.scale("adamw", 1e-3, int(256 * k), 256, rule=False)
    assert off.kappa == k and off.lr == 1e-3 and off.betas == pytest.approx((0.9, 0.999))


def test_momentum_schedule_is_a_function_of_samples_seen():
    # BYOL's cosine schedule: rho_base at the start, 1 at the end, rule applied pointwise.
    assert scaling.cosine_to_one(0.0, 0.99) == pytest.approx(0.99)
    assert scaling.cosine_to_one(0.5, 0.99) == pytest.approx(0.995)
    assert scaling.cosine_to_one(1.0, 0.99) == pytest.approx(1.0)
    target = EMATarget(nn.Linear(2, 2), 0.99, "cosine", kappa=4)
    assert target.momentum_at(0.25) == pytest.approx(scaling.cosine_to_one(0.25, 0.99) ** 4)
    assert scaling.linear_to_one(0.5, 0.996) == pytest.approx(0.998)


def test_target_gets_no_gradient_and_buffers_follow():
    online = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    target = EMATarget(online, 0.5)
    assert all(not p.requires_grad for p in target.parameters())
    online(torch.randn(8, 4) * 3 + 1)  # moves the online BatchNorm statistics
    target.update(online, 0.5)
    torch.testing.assert_close(target.model[1].running_mean, online[1].running_mean)
    torch.testing.assert_close(target.model[1].running_var, online[1].running_var)
    out = target(torch.randn(2, 4))
    assert not out.requires_grad


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: scaling.kappa(256, 0), "base batch size must be positive"),
        (lambda: scaling.scale("rmsprop", 0.1, 256, 256), "no learning-rate scaling rule for optimizer 'rmsprop'"),
        (lambda: scaling.scaled_momentum(1.0, 2), r"must lie in \[0, 1\)"),
        (lambda: scaling.scaled_momentum(-0.1, 2), r"must lie in \[0, 1\)"),
        (lambda: EMATarget(nn.Linear(1, 1), 1.5), r"must lie in \[0, 1\)"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(UserError, match=match):
        call()
