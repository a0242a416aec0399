"""SQuAD through its seqio pipeline on TFDS mock data: T5's format and the best-answer
metric, against hand-written strings and hand-computed scores."""

import numpy as np
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

import hyperprompt.tasks  # noqa: F401  (registers the tasks)
from hyperprompt.tasks import squad

EXAMPLE = {"id": "5733be284776f41900661182", "title": "Notre_Dame",
           "context": "The Basilica is beside the Main Building.",
           "question": "What is beside the Main Building?",
           "answers": {"text": ["The Basilica", "Basilica"], "answer_start": [0, 4]}}


def as_dataset_fn(builder, split, **kwargs):
    answers = EXAMPLE["answers"]
    return tf.data.Dataset.from_tensors({
        **{k: EXAMPLE[k] for k in ("id", "title", "context", "question")},
        "answers": {"text": tf.constant(answers["text"]),
                    "answer_start": np.array(answers["answer_start"], np.int32)}})


@pytest.mark.parametrize("split", ["train", "validation"])
def test_t5_format_and_answers(split, t5_vocab):
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn):
        task = seqio.get_mixture_or_task("squad")
        (row,) = task.get_dataset({"inputs": 64, "targets": 16}, split=split, shuffle=False,
                                  try_in_mem_cache=False).as_numpy_iterator()
    inputs = ("question: What is beside the Main Building? context: The Basilica is beside "
              "the Main Building.")
    assert row["inputs_pretokenized"].decode() == inputs
    assert row["targets_pretokenized"].decode() == "The Basilica"
    assert row["inputs"].tolist() == t5_vocab.encode(inputs) + [t5_vocab.eos_id]
    assert task.postprocess_fn(row["targets_pretokenized"], example=row, is_target=True) == [
        "The Basilica", "Basilica"]


def test_metric_is_the_best_over_answers():
    targets = [["The Basilica", "Basilica"], ["Paris"], ["a red car"]]
    predictions = ["basilica", "in Paris France", "blue car"]
    # EM: 1 (normalised), 0, 0; F1: 1, 2*(1/3)*1/(1/3+1) = 0.5, 2*(1/2)*(1/2)/1 = 0.5
    got = squad.em_and_f1(targets, predictions)
    assert got["em"] == pytest.approx(100 / 3)
    assert got["f1"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)
