"""SQuAD v1.1 (Rajpurkar et al. 2016; TFDS `squad`) in T5's format: one of ATTEMPT's six
source tasks (Asai et al. 2022, Section 4.1).

"question: <question> context: <context>" -> the first answer (T5's `squad` preprocessor,
Raffel et al. 2020, appendix D.15); every answer passes through as `answers`, and the
metric takes the best over them (SQuAD's EM and token F1, as T5's `squad` metric).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from hyperprompt.tasks import metrics
from hyperprompt.tasks.tfds_tasks import add_tfds_task

TFDS_NAME = "squad/v1.1:3.0.0"
TASK = "squad"


@seqio.map_over_dataset
def squad_text(x: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """T5's text format; `answers` [n] carried for the metric."""
    answers = x["answers"]["text"]
    inputs = tf.strings.join(["question:", x["question"], "context:", x["context"]],
                             separator=" ")
    return {"inputs": inputs, "targets": answers[0], "answers": answers}


def postprocess(output: Any, example: Mapping | None = None, is_target: bool = False):
    """Predictions stay text; targets become all the example's answers."""
    text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)  # noqa: E731
    if not is_target:
        return text(output)
    return [text(a) for a in example["answers"]]


def em_and_f1(targets: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """Best over each example's answers of exact match and token F1 (SQuAD's normalisation)."""
    em = [max(metrics.normalize_answer(p) == metrics.normalize_answer(a) for a in answers)
          for answers, p in zip(targets, predictions, strict=True)]
    f1 = [max(metrics.token_f1(p, a) for a in answers)
          for answers, p in zip(targets, predictions, strict=True)]
    return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}


def register() -> None:
    add_tfds_task(TASK, TFDS_NAME, [squad_text], postprocess, [em_and_f1],
                  ["train", "validation"])


register()
