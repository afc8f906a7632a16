import math

import numpy as np
import pytest
import torch

from ssl_suite.eval.fairness import group_counts, group_metrics

# Hand-made confusion table, (y, a): items, correct -> accuracy
#   (0, 0): 10 items, 9 right -> 90 %
#   (0, 1):  5 items, 2 right -> 40 %
#   (1, 0):  4 items, 1 right -> 25 %
#   (1, 1):  6 items, 6 right -> 100 %
# plain accuracy = 18 / 25 = 72 %; worst group = 25 %
# subgroup gaps: class 0 |90 - 40| = 50, class 1 |25 - 100| = 75 -> mean 62.5
TABLE = {(0, 0): (10, 9), (0, 1): (5, 2), (1, 0): (4, 1), (1, 1): (6, 6)}


def table_tensors(table=TABLE):
    pred, labels, attrs = [], [], []
    for (y, a), (n, right) in table.items():
        labels += [y] * n
        attrs += [a] * n
        pred += [y] * right + [1 - y] * (n - right)
    return torch.tensor(pred), torch.tensor(labels), torch.tensor(attrs)


def test_hand_table_without_train_counts_is_plain_accuracy():
    m = group_metrics(*table_tensors())
    assert m["per_group"] == pytest.approx({"y=0,a=0": 90.0, "y=0,a=1": 40.0, "y=1,a=0": 25.0, "y=1,a=1": 100.0})
    assert m["average"] == pytest.approx(72.0)
    assert m["worst_group"] == pytest.approx(25.0)
    assert m["mean_subgroup_gap"] == pytest.approx(62.5)


def test_average_weighted_by_train_group_counts():
    # train counts 70 / 5 / 5 / 20 (of 100):
    # (70 * 90 + 5 * 40 + 5 * 25 + 20 * 100) / 100 = (6300 + 200 + 125 + 2000) / 100 = 86.25
    counts = {(0, 0): 70, (0, 1): 5, (1, 0): 5, (1, 1): 20}
    pred, labels, attrs = table_tensors()
    assert group_metrics(pred, labels, attrs, counts)["average"] == pytest.approx(86.25)
    assert group_metrics(pred.numpy(), labels.numpy(), attrs.numpy(), counts)["average"] == pytest.approx(86.25)


def test_group_counts_feeds_the_weights():
    _, labels, attrs = table_tensors()
    assert group_counts(labels, attrs) == {(0, 0): 10, (0, 1): 5, (1, 0): 4, (1, 1): 6}
    # train = test counts: the weighted average is plain accuracy again (72 %)
    pred = table_tensors()[0]
    assert group_metrics(pred, labels, attrs, group_counts(labels, attrs))["average"] == pytest.approx(72.0)


def test_three_attribute_values_use_max_minus_min():
    # class 0: a=0 90 %, a=1 40 %, a=2 3/5 = 60 % -> gap 90 - 40 = 50
    # class 1: only a=0 (1/4 = 25 %) -> no gap; mean over class 0 alone = 50
    table = {(0, 0): (10, 9), (0, 1): (5, 2), (0, 2): (5, 3), (1, 0): (4, 1)}
    m = group_metrics(*table_tensors(table))
    assert m["per_group"]["y=0,a=2"] == pytest.approx(60.0)
    assert m["mean_subgroup_gap"] == pytest.approx(50.0)
    assert m["worst_group"] == pytest.approx(25.0)


def test_one_attribute_value_per_class_gives_nan_gap():
    m = group_metrics(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert m["worst_group"] == 100.0 and math.isnan(m["mean_subgroup_gap"])


def test_shapes_are_validated():
    pred, labels, attrs = table_tensors()
    with pytest.raises(ValueError, match="differ in length"):
        group_metrics(pred[:-1], labels, attrs)
    with pytest.raises(ValueError, match="argmax"):
        group_metrics(torch.zeros(len(labels), 2), labels, attrs)
    with pytest.raises(ValueError, match="integers"):
        group_metrics(np.zeros(len(labels)), labels, attrs)
    with pytest.raises(ValueError, match="at least one"):
        group_metrics([], [], [])
