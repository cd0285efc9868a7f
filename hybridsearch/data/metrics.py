"""Task metrics with standard errors, and McNemar's paired test.

- `score(metric, preds, labels) -> (value, stderr)`: metric in accuracy | f1 | mcc, as a
  fraction in [0, 1] ([-1, 1] for mcc). `preds` are class ids (N,) or logits (N, C).
  Accuracy's standard error is the binomial sqrt(p(1-p)/n); F1's and MCC's come from a
  fixed-seed bootstrap (1,000 resamples).
- `mcnemar(correct_a, correct_b) -> p_value`: exact two-sided McNemar test on paired
  per-example correctness of two models on the same examples.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0


def _as_ids(preds) -> np.ndarray:
    preds = np.asarray(preds)
    return preds.argmax(-1) if preds.ndim == 2 else preds.astype(np.int64)


def _f1(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Binary F1 of class 1 along the last axis; pred/gold (..., N) of 0/1."""
    tp = ((pred == 1) & (gold == 1)).sum(-1)
    fp = ((pred == 1) & (gold != 1)).sum(-1)
    fn = ((pred != 1) & (gold == 1)).sum(-1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def _mcc(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Binary Matthews correlation along the last axis (0 where undefined)."""
    tp = ((pred == 1) & (gold == 1)).sum(-1).astype(float)
    tn = ((pred != 1) & (gold != 1)).sum(-1).astype(float)
    fp = ((pred == 1) & (gold != 1)).sum(-1).astype(float)
    fn = ((pred != 1) & (gold == 1)).sum(-1).astype(float)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1.0), 0.0)


def metric_value(metric: str, preds, labels) -> float:
    """The metric alone (no standard error)."""
    pred, gold = _as_ids(preds), np.asarray(labels, dtype=np.int64)
    if metric == "accuracy":
        return float((pred == gold).mean())
    if metric == "f1":
        return float(_f1(pred, gold))
    if metric == "mcc":
        return float(_mcc(pred, gold))
    raise ValueError(f"unknown metric {metric!r}; use accuracy, f1 or mcc")


def score(metric: str, preds, labels) -> tuple[float, float]:
    """(value, standard error) of `metric`; see the module docstring."""
    pred, gold = _as_ids(preds), np.asarray(labels, dtype=np.int64)
    if pred.shape != gold.shape or pred.ndim != 1 or len(gold) == 0:
        raise ValueError(f"preds {pred.shape} and labels {gold.shape} must be equal, non-empty 1-D")
    value = metric_value(metric, pred, gold)
    n = len(gold)
    if metric == "accuracy":
        return value, float(np.sqrt(value * (1 - value) / n))
    fn = _f1 if metric == "f1" else _mcc
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    stats = []
    for start in range(0, BOOTSTRAP, 100):  # chunks keep memory at 100 * N
        idx = rng.integers(0, n, size=(min(100, BOOTSTRAP - start), n))  # (R, N)
        stats.append(fn(pred[idx], gold[idx]))
    return value, float(np.concatenate(stats).std(ddof=1))


def mcnemar(correct_a, correct_b) -> float:
    """Exact two-sided McNemar p-value for paired correctness vectors (bool, (N,))."""
    from scipy.stats import binom

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors must have the same shape, got {a.shape} and {b.shape}")
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(only_a, only_b), n, 0.5)))


def format_score(metric: str, value: float, stderr: float) -> str:
    """'accuracy 81.2% ± 1.6' style (mcc as a plain number)."""
    if metric == "mcc":
        return f"mcc {value:.3f} ± {stderr:.3f}"
    return f"{metric} {100 * value:.1f}% ± {100 * stderr:.1f}"
