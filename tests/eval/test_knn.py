"""knn_classify against a brute-force oracle written with plain numpy loops."""

import math

import numpy as np
import pytest
import torch

from ssl_suite.eval.knn import knn_classify


def brute_force_knn(train_x, train_y, test_x, test_y, k, T, C):
    """DINO kNN, one query at a time; ties in class scores count against the true class."""
    tr = np.asarray(train_x, dtype=np.float64)
    tr = tr / np.linalg.norm(tr, axis=1, keepdims=True)
    hits1 = hits5 = 0
    for q, label in zip(np.asarray(test_x, dtype=np.float64), np.asarray(test_y)):
        q = q / np.linalg.norm(q)
        sims = [float(np.dot(q, t)) for t in tr]
        nearest = sorted(range(len(sims)), key=lambda j: -sims[j])[:k]
        scores = [0.0] * C
        for j in nearest:
            scores[int(train_y[j])] += math.exp(sims[j] / T)
        s = scores[int(label)]
        rank = sum(v > s for v in scores) + sum(v == s for v in scores) - 1
        hits1 += rank < 1
        hits5 += rank < min(5, C)
    n = len(test_y)
    return 100.0 * hits1 / n, 100.0 * hits5 / n


def make_data(seed, n_train=300, n_test=90, dim=16, C=7):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(C, dim, generator=g)
    ytr = torch.randint(0, C, (n_train,), generator=g)
    yte = torch.randint(0, C, (n_test,), generator=g)
    xtr = centers[ytr] + 1.5 * torch.randn(n_train, dim, generator=g)
    xte = centers[yte] + 1.5 * torch.randn(n_test, dim, generator=g)
    return xtr * 3.0, ytr, xte, yte  # scale: normalisation must remove it


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("chunks", [(512, 131072), (7, 13), (1, 300)])
def test_matches_brute_force(seed, chunks):
    xtr, ytr, xte, yte = make_data(seed)
    ks = [1, 5, 20, 50, 300]
    got = knn_classify(xtr, ytr, xte, yte, k=ks, chunk_size=chunks[0], bank_chunk_size=chunks[1])
    assert set(got) == set(ks)
    for k in ks:
        top1, top5 = brute_force_knn(xtr, ytr, xte, yte, k, 0.07, 7)
        assert got[k]["top1"] == pytest.approx(top1, abs=1e-9), k
        assert got[k]["top5"] == pytest.approx(top5, abs=1e-9), k
    # An int k gives the flat dict, same numbers as the sequence form.
    single = knn_classify(xtr, ytr, xte, yte, k=20, chunk_size=chunks[0], bank_chunk_size=chunks[1])
    assert single["top1"] == got[20]["top1"] and "k=20" in single["protocol"]


def test_temperature_and_few_classes():
    xtr, ytr, xte, yte = make_data(3, C=3)
    got = knn_classify(xtr, ytr, xte, yte, k=10, temperature=0.5, chunk_size=16, bank_chunk_size=40)
    top1, _ = brute_force_knn(xtr, ytr, xte, yte, 10, 0.5, 3)
    assert got["top1"] == pytest.approx(top1, abs=1e-9)
    assert got["top5"] == 100.0  # top-5 of a 3-class task is top-3


def test_bad_inputs():
    xtr, ytr, xte, yte = make_data(0, n_train=30, n_test=10)
    with pytest.raises(ValueError, match="exceeds the 30 train samples"):
        knn_classify(xtr, ytr, xte, yte, k=31)
    for bad in (0, -1, [], [5, 0], 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            knn_classify(xtr, ytr, xte, yte, k=bad)
    with pytest.raises(ValueError, match="train"):
        knn_classify(xtr, ytr[:-1], xte, yte, k=5)
    with pytest.raises(ValueError, match="feature dims differ"):
        knn_classify(xtr, ytr, xte[:, :3], yte, k=5)
    with pytest.raises(ValueError, match="num_classes"):
        knn_classify(xtr, ytr, xte, yte, k=5, num_classes=3)
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(xtr, ytr, xte, yte, k=5, temperature=0.0)
