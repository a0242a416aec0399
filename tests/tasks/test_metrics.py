"""Each metric against a naive computation written here (formulas, not libraries)."""

import math

import numpy as np
import pytest

from hyperprompt.tasks import metrics
from hyperprompt.tasks.postprocessors import INVALID

RNG = np.random.default_rng(0)


def _confusion(targets, predictions, positive=1):
    tp = sum(t == positive and p == positive for t, p in zip(targets, predictions, strict=True))
    fp = sum(t != positive and p == positive for t, p in zip(targets, predictions, strict=True))
    fn = sum(t == positive and p != positive for t, p in zip(targets, predictions, strict=True))
    tn = len(targets) - tp - fp - fn
    return tp, fp, fn, tn


def _f1(targets, predictions, positive=1):
    tp, fp, fn, _ = _confusion(targets, predictions, positive)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _ranks(x):
    """Average ranks (ties share the mean of their positions), 1-based."""
    x = np.asarray(x)
    ranks = np.empty(len(x))
    for value in set(x.tolist()):
        where = np.flatnonzero(x == value)
        positions = [1 + np.sum(x < value) + k for k in range(len(where))]
        ranks[where] = np.mean(positions)
    return ranks


def _pearson(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def test_accuracy_and_mcc_on_random_predictions():
    t, p = RNG.integers(0, 2, 200).tolist(), RNG.integers(0, 2, 200).tolist()
    assert metrics.accuracy(t, p)["accuracy"] == pytest.approx(
        100 * np.mean(np.equal(t, p)))
    tp, fp, fn, tn = _confusion(t, p)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.matthews_corr(t, p)["mcc"] == pytest.approx(100 * mcc)


def test_mcc_counts_invalid_predictions_as_the_wrong_class():
    t = [0, 1, 1, 0, 1, 1, 0, 1]
    p = [0, 1, INVALID, 0, 1, INVALID, 1, 1]
    tp, fp, fn, tn = _confusion(t, [0, 1, 0, 0, 1, 0, 1, 1])  # invalid -> 1 - target
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.matthews_corr(t, p)["mcc"] == pytest.approx(100 * mcc)  # 25.8, not 40.4


def test_f1_counts_invalid_predictions_as_wrong():
    t = RNG.integers(0, 2, 300).tolist()
    p = RNG.choice([0, 1, INVALID], 300).tolist()
    wrong = [pi if pi != INVALID else 1 - ti for ti, pi in zip(t, p, strict=True)]
    got = metrics.f1_and_accuracy(t, p)
    assert got["f1"] == pytest.approx(100 * _f1(t, wrong))
    assert got["accuracy"] == pytest.approx(100 * np.mean(np.equal(t, p)))


def test_pearson_spearman_with_ties():
    t = np.round(RNG.uniform(0, 5, 100) * 5) / 5
    p = np.round((t + RNG.normal(0, 1, 100)) * 5) / 5
    got = metrics.pearson_spearman(t.tolist(), p.tolist())
    assert got["pearson"] == pytest.approx(100 * _pearson(t, p))
    assert got["spearman"] == pytest.approx(100 * _pearson(_ranks(t), _ranks(p)))


def test_constant_predictions_have_zero_correlation():
    assert metrics.pearson_spearman([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == {"pearson": 0.0,
                                                                       "spearman": 0.0}


def test_cb_macro_f1_over_three_classes():
    t = RNG.integers(0, 3, 120).tolist()
    p = RNG.choice([0, 1, 2, INVALID], 120).tolist()
    macro = np.mean([_f1(t, p, positive=c) for c in range(3)])
    got = metrics.macro_f1_and_accuracy(3)(t, p)
    assert got["f1_macro"] == pytest.approx(100 * macro)
    assert got["accuracy"] == pytest.approx(100 * np.mean(np.equal(t, p)))


def test_multirc_f1a_over_answers_and_em_per_question():
    groups = [(0, q) for q in RNG.integers(0, 15, 90)]
    truth = RNG.integers(0, 2, 90).tolist()
    pred = [t if RNG.random() < 0.7 else 1 - t for t in truth]
    targets = [{"value": v, "group": g} for v, g in zip(truth, groups, strict=True)]
    got = metrics.multirc_f1a_and_em(targets, [{"value": v} for v in pred])
    questions = set(groups)
    em = np.mean([all(t == p for t, p, g in zip(truth, pred, groups, strict=True) if g == q)
                  for q in questions])
    assert got["f1a"] == pytest.approx(100 * _f1(truth, pred))
    assert got["em"] == pytest.approx(100 * em)


def test_record_squad_normalisation_worked_example():
    # SQuAD's normalisation: case, punctuation and articles do not count.
    targets = [{"group": (0, 0), "answers": ["The Eiffel Tower", "Eiffel Tower"]},
               {"group": (0, 0), "answers": ["The Eiffel Tower", "Eiffel Tower"]},
               {"group": (0, 1), "answers": ["Paris, France"]}]
    predictions = ["eiffel tower!", "ignored: a copy of query (0, 0)", "Paris"]
    got = metrics.record_em_and_f1(targets, predictions)
    # Query (0, 1): "paris" vs "paris france": precision 1, recall 1/2 -> F1 2/3.
    assert got["em"] == pytest.approx(100 * (1 + 0) / 2)
    assert got["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
