"""Metrics with standard errors and McNemar's paired test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybridsearch.data.metrics import format_score, mcnemar, metric_value, score


def test_accuracy_and_binomial_stderr():
    labels = np.array([0, 1] * 300)
    preds = labels.copy()
    preds[:120] = 1 - preds[:120]  # 480 / 600 right
    value, se = score("accuracy", preds, labels)
    assert value == pytest.approx(0.8)
    assert se == pytest.approx(math.sqrt(0.8 * 0.2 / 600))  # ~1.6 points


def test_logits_are_argmaxed():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert score("accuracy", logits, [0, 1, 1])[0] == pytest.approx(2 / 3)


def test_f1_and_mcc_values():
    preds = np.array([1, 1, 0, 0, 1, 0])
    gold = np.array([1, 0, 0, 1, 1, 0])
    # tp=2 fp=1 fn=1 tn=2
    assert metric_value("f1", preds, gold) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert metric_value("mcc", preds, gold) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert metric_value("mcc", np.zeros(6, int), gold) == 0.0  # undefined -> 0


def test_bootstrap_stderr_is_positive_and_deterministic():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 400)
    preds = np.where(rng.random(400) < 0.8, gold, 1 - gold)
    for metric in ("f1", "mcc"):
        v1, se1 = score(metric, preds, gold)
        v2, se2 = score(metric, preds, gold)
        assert (v1, se1) == (v2, se2)
        assert 0.005 < se1 < 0.1


def test_mcnemar():
    a = np.array([True] * 50)
    assert mcnemar(a, a) == 1.0
    b = a.copy()
    b[:10] = False  # a right / b wrong on 10, never the other way
    assert mcnemar(a, b) == pytest.approx(2 * 0.5**10)
    c = a.copy()
    c[:3] = False
    d = a.copy()
    d[3:6] = False  # 3 vs 3 discordant: no evidence
    assert mcnemar(c, d) == 1.0
    with pytest.raises(ValueError):
        mcnemar(a, a[:10])


def test_format_score():
    assert format_score("accuracy", 0.8123, 0.016) == "accuracy 81.2% ± 1.6"
    assert format_score("mcc", 0.5, 0.05).startswith("mcc 0.500")
