"""fit_logistic against sklearn's LogisticRegression (same objective, same C); the C sweep against brute force."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ssl_suite.eval.logistic import fit_logistic, logistic_probe, standardize, stratified_holdout


def data(n=4000, dim=64, classes=10, seed=0):
    """Standardised train/test features of an overlapping 10-class problem (accuracy far from 100%)."""
    X, y = make_classification(
        n_samples=n,
        n_features=dim,
        n_informative=min(40, dim - 2),
        n_classes=classes,
        n_clusters_per_class=1,
        class_sep=0.8,
        random_state=seed,
    )
    X, y = torch.tensor(X, dtype=torch.float32) * torch.linspace(0.1, 10, dim) + 3, torch.tensor(y)
    cut = n * 3 // 4
    xtr, xte = standardize(X[:cut], X[cut:])
    return xtr, y[:cut], xte, y[cut:]


def objective(w, b, x, y, C):
    """sklearn's objective: sum_i CE_i + |W|^2 / 2C, in float64."""
    w, b, x = (torch.as_tensor(np.asarray(t)).double() for t in (w, b, x))
    return (torch.nn.functional.cross_entropy(x @ w.T + b, y, reduction="sum") + w.pow(2).sum() / (2 * C)).item()


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_matches_sklearn(C):
    xtr, ytr, xte, yte = data()
    with threadpool_limits(1):
        clf = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(xtr.double().numpy(), ytr.numpy())
    ref_acc = 100 * clf.score(xte.double().numpy(), yte.numpy())
    assert 30 < ref_acc < 90
    w, b = fit_logistic(xtr, ytr, 10, C=C)  # float32, default tol
    assert abs(100 * ((xte @ w.T + b).argmax(1) == yte).double().mean().item() - ref_acc) <= 0.5
    w64, b64 = fit_logistic(xtr, ytr, 10, C=C, tol=1e-7, dtype=torch.float64)
    ref_obj = objective(clf.coef_, clf.intercept_, xtr, ytr, C)
    assert objective(w64, b64, xtr, ytr, C) == pytest.approx(ref_obj, rel=1e-7)
    assert objective(w, b, xtr, ytr, C) == pytest.approx(ref_obj, rel=1e-4)
    scale = np.abs(clf.coef_).max()
    assert np.abs(w64.numpy() - clf.coef_).max() <= 1e-3 * scale
    # the intercept is unpenalised, so only its differences between classes are identified
    ref_b = clf.intercept_ - clf.intercept_.mean()
    assert np.abs((b64 - b64.mean()).numpy() - ref_b).max() <= 1e-3 * max(1.0, np.abs(ref_b).max())


def test_warm_start_from_solution_returns_it():
    xtr, ytr, _, _ = data(n=800, dim=16, classes=4)
    w, b = fit_logistic(xtr, ytr, 4, C=0.1, tol=1e-6, dtype=torch.float64)
    w2, b2 = fit_logistic(xtr, ytr, 4, C=0.1, tol=1e-6, dtype=torch.float64, init=(w, b), max_iter=1)
    assert torch.allclose(w, w2) and torch.allclose(b, b2)


def test_sweep_picks_best_held_out_C():
    xtr_raw, ytr, xte_raw, yte = data(n=1600, dim=20, classes=5, seed=1)
    xtr_raw, xte_raw = xtr_raw * 4 - 1, xte_raw * 4 - 1  # the probe standardises itself
    Cs = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    kw = dict(tol=1e-7, dtype=torch.float64)
    got = logistic_probe(xtr_raw, ytr, xte_raw, yte, Cs=Cs[::-1], seed=3, progress=False, return_logits=True, **kw)
    # brute force: same standardisation and hold-out, cold start per C
    xtr, xte = standardize(xtr_raw.double(), xte_raw.double())
    fit, val = stratified_holdout(ytr, 0.1, seed=3)
    acc = {}
    for C in Cs:
        w, b = fit_logistic(xtr[fit], ytr[fit], 5, C=C, **kw)
        acc[C] = 100 * ((xtr[val] @ w.T + b).argmax(1) == ytr[val]).double().mean().item()
    assert len(set(acc.values())) > 1  # the grid matters on this problem
    assert got["val_top1"] == pytest.approx(acc)
    best = max(Cs, key=lambda c: (acc[c], -c))
    assert got["C"] == best
    w, b = fit_logistic(xtr, ytr, 5, C=best, **kw)
    assert got["top1"] == pytest.approx(100 * ((xte @ w.T + b).argmax(1) == yte).double().mean().item())
    assert got["logits"].shape == (len(yte), 5) and "hold-out" in got["protocol"]
    assert 0 < got["top1"] <= got["top5"] == 100.0  # 5 classes: top-5 is top-5 of 5


def test_stratified_holdout():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 1)
    fit, val = stratified_holdout(y, 0.1, seed=0)
    assert torch.bincount(y[val], minlength=3).tolist() == [5, 3, 0]
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(len(y)))
    assert torch.equal(val, stratified_holdout(y, 0.1, seed=0)[1])
    assert not torch.equal(val, stratified_holdout(y, 0.1, seed=1)[1])


def test_bad_inputs():
    x, y = torch.randn(20, 3), torch.arange(20) % 4
    with pytest.raises(ValueError, match="C > 0"):
        fit_logistic(x, y, 4, C=0)
    with pytest.raises(ValueError, match="labels in"):
        fit_logistic(x, y, 3)
    with pytest.raises(ValueError, match="integer"):
        fit_logistic(x, y.float(), 4)
    with pytest.raises(ValueError, match="need x"):
        fit_logistic(x, y[:-1], 4)
    with pytest.raises(ValueError, match="dtype"):
        fit_logistic(x, y, 4, dtype=torch.float16)
    with pytest.raises(ValueError, match="init"):
        fit_logistic(x, y, 4, init=(torch.zeros(4, 2), torch.zeros(4)))
    with pytest.raises(ValueError, match="Cs"):
        logistic_probe(x, y, x, y, Cs=(), progress=False)
    with pytest.raises(ValueError, match="Cs"):
        logistic_probe(x, y, x, y, Cs=(-1.0, 1.0), progress=False)
    with pytest.raises(ValueError, match="val_fraction"):
        logistic_probe(x, y, x, y, val_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="holds out no sample"):
        logistic_probe(x, y, x, y, val_fraction=0.01, progress=False)
    with pytest.raises(ValueError, match="feature dims"):
        logistic_probe(x, y, x[:, :2], y, progress=False)
