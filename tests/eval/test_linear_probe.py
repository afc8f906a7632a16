"""linear_probe against sklearn's LogisticRegression on the same features; topk_accuracy by hand."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ssl_suite.eval.linear import linear_probe, topk_accuracy
from ssl_suite.eval.synthetic import gaussian_features


def gaussian_mixture(seed, n_train=6000, n_test=4000, dim=32, C=20, sep=0.4):
    """Overlapping classes (accuracy far from 100%) with per-dimension scales and offsets."""
    return gaussian_features(n_train, n_test, dim, C, sep, seed, log_scale=1.5, offset=5.0)


def sklearn_top1(xtr, ytr, xte, yte):
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=10000))
    clf.fit(np.asarray(xtr), np.asarray(ytr))
    return 100.0 * float((clf.predict(np.asarray(xte)) == np.asarray(yte)).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_logistic_regression_gaussian_mixture(seed):
    xtr, ytr, xte, yte = gaussian_mixture(seed)
    got = linear_probe(xtr, ytr, xte, yte, seed=seed, progress=False)  # default protocol
    ref = sklearn_top1(xtr, ytr, xte, yte)
    assert 30 < ref < 90  # the task is neither trivial nor hopeless
    assert abs(got["top1"] - ref) <= 1.0, (got, ref)
    assert got["top5"] > got["top1"]


@pytest.mark.parametrize("split_seed", [0, 3])
def test_matches_logistic_regression_digits(split_seed):
    X, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.5, random_state=split_seed, stratify=y)
    ref = sklearn_top1(xtr, ytr, xte, yte)
    # 898 samples: a smaller batch than the default so the probe gets more than 1 step per epoch.
    got = linear_probe(
        torch.tensor(xtr),
        torch.tensor(ytr),
        torch.tensor(xte),
        torch.tensor(yte),
        batch_size=128,
        seed=split_seed,
        progress=False,
    )
    assert abs(got["top1"] - ref) <= 1.0, (got, ref)


def test_deterministic_and_protocol_recorded():
    xtr, ytr, xte, yte = gaussian_mixture(5, n_train=2000, n_test=500)
    a = linear_probe(xtr, ytr, xte, yte, epochs=5, seed=7, progress=False)
    b = linear_probe(xtr, ytr, xte, yte, epochs=5, seed=7, progress=False)
    assert a == b
    for part in ("BN(no affine)+linear", "SGD", "lr=0.1*1024/256=0.4", "5 epochs", "batch 1024", "cosine"):
        assert part in a["protocol"], part


def test_lars_applies_the_trust_ratio_without_weight_decay():
    # lightly's LARS would reduce to SGD here (no ratio at weight decay 0); MAE's does not.
    xtr, ytr, xte, yte = gaussian_mixture(6, n_train=2000, n_test=500)
    kw = dict(epochs=3, seed=1, progress=False, return_logits=True)
    sgd, lars = linear_probe(xtr, ytr, xte, yte, **kw), linear_probe(xtr, ytr, xte, yte, optimizer="lars", **kw)
    assert not torch.allclose(sgd["logits"], lars["logits"])


def test_few_classes_top5_is_top_c():
    xtr, ytr, xte, yte = gaussian_mixture(4, n_train=600, n_test=200, C=3)
    got = linear_probe(xtr, ytr, xte, yte, epochs=2, batch_size=100, progress=False)
    assert got["top5"] == 100.0 and "top-3" in got["protocol"]


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.4, 0.4, 0.2]])
    labels = torch.tensor([1, 1, 0, 1])
    # ranks: 0, 1, 2 (tie with class 1 counts against), 1 (tie with class 0 counts against)
    assert topk_accuracy(scores, labels, ks=(1, 2, 5)) == {"top1": 25.0, "top2": 75.0, "top5": 100.0}


def test_bad_inputs():
    xtr, ytr, xte, yte = gaussian_mixture(0, n_train=100, n_test=50, C=4)
    with pytest.raises(ValueError, match="train"):
        linear_probe(xtr, ytr[:-1], xte, yte)
    with pytest.raises(ValueError, match="test"):
        linear_probe(xtr, ytr, xte[:-2], yte)
    with pytest.raises(ValueError, match="feature dims differ"):
        linear_probe(xtr, ytr, xte[:, :5], yte)
    with pytest.raises(ValueError, match="num_classes"):
        linear_probe(xtr, ytr, xte, yte, num_classes=2)
    with pytest.raises(ValueError, match="integer"):
        linear_probe(xtr, ytr.float(), xte, yte)
    with pytest.raises(ValueError, match="optimizer"):
        linear_probe(xtr, ytr, xte, yte, optimizer="adam")
    with pytest.raises(ValueError, match="warmup_epochs"):
        linear_probe(xtr, ytr, xte, yte, epochs=3, warmup_epochs=5)
    with pytest.raises(ValueError, match="scores"):
        topk_accuracy(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="ks must be positive"):
        topk_accuracy(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), ks=(0,))


def test_lars_probe_step_is_maes_with_the_trust_ratio_at_zero_weight_decay():
    """MAE's util/lars.py (facebookresearch/mae), written out: for a weight matrix
    dp = g + wd p; q = 0.001 |p| / |dp| (1 where a norm is 0); mu = 0.9 mu + q dp; p -= lr mu.
    The bias (ndim 1) is plain SGD with momentum. wd = 0 as in MAE's probe."""
    from ssl_suite.eval.linear import probe_optimizer

    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    opt = probe_optimizer(layer, "lars", lr=6.4, momentum=0.9)
    mu_w, mu_b = torch.zeros_like(w0), torch.zeros_like(b0)
    w, b = w0.clone(), b0.clone()
    for _step in range(3):
        x = torch.randn(16, 6)
        loss = layer(x).square().mean()
        opt.zero_grad()
        loss.backward()
        g_w, g_b = layer.weight.grad.clone(), layer.bias.grad.clone()
        opt.step()
        q = 0.001 * w.norm() / g_w.norm()
        mu_w = 0.9 * mu_w + q * g_w
        mu_b = 0.9 * mu_b + g_b
        w, b = w - 6.4 * mu_w, b - 6.4 * mu_b
        torch.testing.assert_close(layer.weight.detach(), w, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(layer.bias.detach(), b, rtol=1e-5, atol=1e-7)
        layer.weight.data.copy_(w)  # keep the oracle and the optimizer on the same trajectory
        layer.bias.data.copy_(b)


def test_lars_probe_at_maes_batch_16384_matches_logistic_regression():
    # MAE's ImageNet probe: batch 16384, lr 0.1 x 16384 / 256 = 6.4, LARS, 90 epochs, 10 warm-up.
    xtr, ytr, xte, yte = gaussian_mixture(7, n_train=40000, n_test=5000, dim=64, C=20)
    got = linear_probe(xtr, ytr, xte, yte, epochs=90, batch_size=16384, lr=0.1, optimizer="lars", progress=False)
    assert "LARS" in got["protocol"] and "lr=0.1*16384/256=6.4" in got["protocol"]
    assert abs(got["top1"] - sklearn_top1(xtr, ytr, xte, yte)) <= 1.0
