"""The raw-pixel floor on real Fashion-MNIST equals a plain sklearn / numpy computation of the
same probes (the eval transform's normalised pixels, flattened): logistic regression at C = 1
on standardised pixels (sklearn), and DINO's kNN (k = 20, T = 0.07, cosine, weighted vote)."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ssl_suite.config import load_config
from ssl_suite.data import eval_dataset
from ssl_suite.errors import UserError
from ssl_suite.eval.run import evaluate

N_TRAIN = 5000


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    cfg = load_config(
        "configs/demo.yaml",
        [
            "eval.logistic_Cs=[1.0]",
            "eval.knn_k=[20]",
            f"eval.train_subset={N_TRAIN}",
            f"output_dir={tmp_path_factory.mktemp('pixels')}",
        ],
    )
    try:
        train = eval_dataset(cfg.data, "train", N_TRAIN)
        test = eval_dataset(cfg.data, "test")
    except UserError:
        pytest.skip("Fashion-MNIST is not installed (scripts/setup.sh installs Debian's dataset-fashion-mnist)")

    def arrays(ds):
        x, y = zip(*(ds[i] for i in range(len(ds))))
        return torch.stack(x).flatten(1).numpy().astype(np.float64), np.asarray(y)

    return cfg, arrays(train), arrays(test)


def test_raw_pixel_probes_match_sklearn_and_numpy(fashion):
    cfg, (xtr, ytr), (xte, yte) = fashion
    rows = evaluate(cfg, None, probes=("logistic", "knn"), baseline=False, pixels=True)
    assert set(rows) == {"raw pixels"}
    got = rows["raw pixels"]

    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(xtr), ytr)
    sk_logistic = 100 * (clf.predict(scaler.transform(xte)) == yte).mean()
    assert abs(got["logistic"]["top1"] - sk_logistic) <= 1.0, (got["logistic"]["top1"], sk_logistic)

    a = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    b = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    sim = b @ a.T
    top = np.argsort(-sim, axis=1)[:, :20]
    votes = np.zeros((len(b), 10))
    np.add.at(
        votes, (np.arange(len(b))[:, None].repeat(20, 1), ytr[top]), np.exp(np.take_along_axis(sim, top, 1) / 0.07)
    )
    np_knn = 100 * (votes.argmax(1) == yte).mean()
    assert abs(got["knn"]["k=20"]["top1"] - np_knn) <= 1.0, (got["knn"]["k=20"]["top1"], np_knn)
