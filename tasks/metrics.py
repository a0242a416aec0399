"""GLUE/SuperGLUE metrics as the leaderboards define them, in percent.

Each takes (targets, predictions) after postprocessing and returns
{metric name: value}; INVALID predictions count as wrong. Statistics come from
scikit-learn and scipy.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import numpy as np
import scipy.stats
import sklearn.metrics

from hyperprompt.tasks.postprocessors import INVALID


def accuracy(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    return {"accuracy": 100 * sklearn.metrics.accuracy_score(targets, predictions)}


def matthews_corr(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """CoLA: Matthews correlation, an unparsable prediction counted as the wrong class."""
    binary = _wrong_if_invalid(targets, predictions)
    return {"mcc": 100 * sklearn.metrics.matthews_corrcoef(targets, binary)}


def _wrong_if_invalid(targets: Sequence[int], predictions: Sequence[int]) -> np.ndarray:
    """Binary predictions with each INVALID one replaced by the wrong class."""
    targets, predictions = np.asarray(targets), np.array(predictions)
    invalid = predictions == INVALID
    predictions[invalid] = 1 - targets[invalid]
    return predictions


def f1_and_accuracy(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """MRPC, QQP: F1 of the positive class and accuracy."""
    binary = _wrong_if_invalid(targets, predictions)
    return {"f1": 100 * sklearn.metrics.f1_score(targets, binary), **accuracy(targets, binary)}


def pearson_spearman(targets: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """STS-B: Pearson and Spearman correlations.

    Constant predictions (an untrained model's) have no defined correlation; they score 0,
    as scikit-learn's Matthews correlation does in its degenerate case, so that averages
    stay numbers.
    """
    if np.ptp(predictions) == 0 or np.ptp(targets) == 0:
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": 100 * scipy.stats.pearsonr(targets, predictions)[0],
            "spearman": 100 * scipy.stats.spearmanr(targets, predictions)[0]}


def macro_f1_and_accuracy(num_classes: int):
    """CB: F1 averaged over the classes (macro) and accuracy."""

    def fn(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
        f1 = sklearn.metrics.f1_score(targets, predictions, labels=list(range(num_classes)),
                                      average="macro")
        return {"f1_macro": 100 * f1, **accuracy(targets, predictions)}

    return fn


def multirc_f1a_and_em(targets: Sequence[dict], predictions: Sequence[dict]) -> dict[str, float]:
    """MultiRC: F1 over all answer options (F1a) and exact match per question (EM)."""
    truth = [t["value"] for t in targets]
    binary = _wrong_if_invalid(truth, [p["value"] for p in predictions])
    per_question = collections.defaultdict(list)
    for target, truth_value, pred in zip(targets, truth, binary, strict=True):
        per_question[target["group"]].append(truth_value == pred)
    em = np.mean([all(hits) for hits in per_question.values()])
    return {"f1a": 100 * sklearn.metrics.f1_score(truth, binary), "em": 100 * em}


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, answer: str) -> float:
    """SQuAD token F1 between normalised strings."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def record_em_and_f1(targets: Sequence[dict], predictions: Sequence[str]) -> dict[str, float]:
    """ReCoRD: max over a query's answers of EM and token F1, each query counted once."""
    seen, em, f1 = set(), [], []
    for target, prediction in zip(targets, predictions, strict=True):
        if target["group"] in seen:
            continue
        seen.add(target["group"])
        answers = target["answers"] or [""]
        em.append(max(normalize_answer(prediction) == normalize_answer(a) for a in answers))
        f1.append(max(token_f1(prediction, a) for a in answers))
    return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}
