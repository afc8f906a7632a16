"""Low-shot splits (exact sizes, valid, seeded, saved/loaded) and the MSN-style few-shot probe."""

import json

import numpy as np
import pytest
import torch

from ssl_suite.eval.fewshot import fewshot_probe, fewshot_splits, load_splits, save_splits


def labels():
    """8 classes of 10..45 samples, shuffled."""
    y = torch.cat([torch.full((10 + 5 * c,), c) for c in range(8)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


def gaussian(seed, n_train=400, n_test=300, dim=16, classes=8):
    g = torch.Generator().manual_seed(seed)
    centers = 1.5 * torch.randn(classes, dim, generator=g)
    ytr, yte = torch.arange(n_train) % classes, torch.arange(n_test) % classes
    noise = lambda n: torch.randn(n, dim, generator=g)  # noqa: E731
    return centers[ytr] + noise(n_train) + 4, ytr, centers[yte] + noise(n_test) + 4, yte


@pytest.mark.parametrize("k", [1, 5, 10])
def test_exactly_k_per_class_valid_unique(k):
    y = labels()
    splits = fewshot_splits(y, shots=k, num_splits=3, seed=0)
    assert len(splits) == 3
    for s in splits:
        assert s.dtype == torch.long and len(s.unique()) == len(s) == 8 * k
        assert s.min() >= 0 and s.max() < len(y)
        assert torch.bincount(y[s], minlength=8).tolist() == [k] * 8


def test_reproducible_and_different():
    y = labels()
    a, b = fewshot_splits(y, shots=2, seed=0), fewshot_splits(y, shots=2, seed=0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert len({tuple(s.tolist()) for s in a}) == len(a)  # splits differ from each other
    c = fewshot_splits(y, shots=2, seed=1)
    assert not any(torch.equal(u, v) for u, v in zip(a, c))
    # split i depends on (seed, i) only, not on how many splits are drawn
    assert torch.equal(fewshot_splits(y, shots=2, num_splits=2, seed=0)[1], a[1])


def test_percent_sizes():
    y = labels()
    counts = torch.bincount(y)
    for pct in (1.0, 10.0, 50.0):
        (s,) = fewshot_splits(y, percent=pct, num_splits=1)
        want = [max(1, round(pct / 100 * n)) for n in counts.tolist()]
        assert torch.bincount(y[s], minlength=8).tolist() == want and len(s.unique()) == len(s)


def test_bad_split_arguments():
    y = labels()
    with pytest.raises(ValueError, match="exactly one"):
        fewshot_splits(y, shots=1, percent=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        fewshot_splits(y)
    with pytest.raises(ValueError, match="fewer than the 11 shots"):
        fewshot_splits(y, shots=11)
    with pytest.raises(ValueError, match="percent"):
        fewshot_splits(y, percent=0.0)


def test_save_load_round_trip_and_meta_mismatch(tmp_path):
    splits = fewshot_splits(labels(), shots=3, seed=4)
    meta = {"num_train": 220, "shots": 3, "seed": 4, "sizes": (1, 2)}
    path = tmp_path / "sub" / "splits.json"
    save_splits(path, splits, meta)
    loaded = load_splits(path, meta)
    assert all(torch.equal(u, v) and v.dtype == torch.long for u, v in zip(splits, loaded))
    with pytest.raises(ValueError, match=r"differ in \['seed'\]"):
        load_splits(path, {**meta, "seed": 5})


def test_probe_mean_std_and_saved_splits(tmp_path):
    xtr, ytr, xte, yte = gaussian(0)
    kw = dict(shots=(1, 5), percents=(10.0,), num_splits=3, splits_dir=tmp_path)
    res = fewshot_probe(xtr, ytr, xte, yte, **kw)
    assert set(res) == {"1-shot", "5-shot", "10%", "protocol"}
    for key in ("1-shot", "5-shot", "10%"):
        r = res[key]
        assert len(r["per_split"]) == 3
        assert r["mean"] == pytest.approx(np.mean(r["per_split"])) and r["std"] == pytest.approx(np.std(r["per_split"]))
        assert 100 / 8 < r["mean"] <= 100  # better than chance
    assert res["5-shot"]["mean"] > res["1-shot"]["mean"]
    saved = json.loads((tmp_path / "5shot_seed0.json").read_text())
    assert [torch.bincount(ytr[s], minlength=8).tolist() for s in saved["splits"]] == [[5] * 8] * 3
    # a second run loads the saved splits: swap in other valid splits under the same meta, results follow
    other = fewshot_splits(ytr, shots=5, num_splits=3, seed=9)
    save_splits(tmp_path / "5shot_seed0.json", other, saved["meta"])
    again = fewshot_probe(xtr, ytr, xte, yte, **kw)
    assert again["1-shot"] == res["1-shot"] and again["10%"] == res["10%"]
    direct = fewshot_probe(xtr, ytr, xte, yte, shots=(5,), percents=(), num_splits=3, seed=9)
    assert again["5-shot"] == direct["5-shot"]
    with pytest.raises(ValueError, match="num_train"):  # same file names, other data set
        fewshot_probe(xtr[:-8], ytr[:-8], xte, yte, **kw)


def test_msn_protocol_matches_sklearn_on_the_same_split():
    """An independent MSN few-shot (facebookresearch/msn logistic_eval.py): rows centred and
    L2-normalised, sklearn LogisticRegression(fit_intercept=False, C = 1 / (lambda n) = 4000)."""
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = gaussian(3)
    split = fewshot_splits(ytr, shots=5, num_splits=1, seed=0)[0]

    def rows(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.mean(1, keepdims=True)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    clf = LogisticRegression(fit_intercept=False, C=4000.0, max_iter=10000, tol=1e-8)
    clf.fit(rows(xtr[split]), np.asarray(ytr[split]))
    ref = 100.0 * float((clf.predict(rows(xte)) == np.asarray(yte)).mean())
    got = fewshot_probe(xtr, ytr, xte, yte, shots=(5,), percents=(), num_splits=1, seed=0)
    assert abs(got["5-shot"]["mean"] - ref) <= 0.5, (got["5-shot"], ref)
    assert "without intercept" in got["protocol"] and "C=4000" in got["protocol"]


def test_fit_without_intercept_keeps_the_bias_at_zero():
    from ssl_suite.eval.logistic import fit_logistic

    xtr, ytr, _, _ = gaussian(4)
    w, b = fit_logistic(xtr, ytr, 8, C=10.0, fit_intercept=False)
    assert torch.count_nonzero(b) == 0 and torch.count_nonzero(w) > 0
