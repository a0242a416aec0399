"""The embedded default: four tasks over the same letter strings, different outputs.

Every task sees the same pool of random strings (so inputs are shared and the
tasks compete for capacity) and wants a different answer:

  copy     "copy: dbca"     -> "dbca"
  reverse  "reverse: dbca"  -> "acbd"
  sort     "sort: dbca"     -> "abcd"
  count    "count: dbca"    -> "4"      (string length)

Inputs carry the task prefix as T5's text formats do, so vanilla MTL can tell
the tasks apart; conditioned methods also get the task id. Byte vocabulary: no
downloads.

The interference mixture (`synthetic_interference`, the study's) adds two tasks whose
answers contradict each other letter by letter on the same strings, told apart only by
their prefix (and the task id):

  up       "up: dbca"       -> "ecdb"   (each letter one step up the alphabet, h -> a)
  down     "down: dbca"     -> "cabh"   (each letter one step down, a -> h)
"""

from __future__ import annotations

import functools

import numpy as np
import seqio
import tensorflow as tf

ALPHABET = "abcdefgh"
MIN_LEN, MAX_LEN = 3, 10
SPLIT_SIZES = {"train": 50_000, "validation": 512}
SPLIT_SEEDS = {"train": 0, "validation": 1}
TASKS = {
    "copy": lambda s: s,
    "reverse": lambda s: s[::-1],
    "sort": lambda s: "".join(sorted(s)),
    "count": lambda s: str(len(s)),
}
INTERFERING_TASKS = {
    "up": lambda s: "".join(ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)] for c in s),
    "down": lambda s: "".join(ALPHABET[(ALPHABET.index(c) - 1) % len(ALPHABET)] for c in s),
}
# Tasks outside the mixture: a target related to one of its tasks (ATTEMPT's integration
# test transfers from copy to echo, copy under another prefix).
RELATED_TASKS = {"echo": TASKS["copy"]}
ALL_TASKS = {**TASKS, **INTERFERING_TASKS, **RELATED_TASKS}
MIXTURE_NAME = "synthetic_mtl"
INTERFERENCE_MIXTURE_NAME = "synthetic_interference"
VOCABULARY = seqio.ByteVocabulary()
OUTPUT_FEATURES = {
    "inputs": seqio.Feature(VOCABULARY, add_eos=True),
    "targets": seqio.Feature(VOCABULARY, add_eos=True),
}


def task_name(kind: str) -> str:
    return f"synthetic_{kind}"


@functools.cache
def letter_strings(split: str) -> tuple[str, ...]:
    """The split's shared pool of strings (deterministic: a fixed seed per split; drawn
    once per process, since every task's dataset reads the same pool)."""
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=SPLIT_SIZES[split])
    letters = np.array(list(ALPHABET))
    return ["".join(rng.choice(letters, size=n)) for n in lengths]


def exact_match(targets: list[str], predictions: list[str]) -> dict[str, float]:
    """Percentage of predictions equal to their target string."""
    hits = [t == p for t, p in zip(targets, predictions, strict=True)]
    return {"exact_match": 100.0 * float(np.mean(hits)) if hits else 0.0}


@functools.cache
def _texts(kind: str, split: str) -> dict[str, np.ndarray]:
    """The task's input and target strings (built once per process: a run reads each
    task's source several times, e.g. its start-up checks, training and evaluation)."""
    strings = letter_strings(split)
    return {"inputs": np.array([f"{kind}: {s}" for s in strings], dtype=object),
            "targets": np.array([ALL_TASKS[kind](s) for s in strings], dtype=object)}


def _dataset_fn(kind: str):
    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        del shuffle_files, seed  # one in-memory shard; the pipeline shuffles examples
        return tf.data.Dataset.from_tensor_slices(_texts(kind, split))
    return dataset_fn


def register() -> None:
    """Register every task here, the first four's equal-rate mixture and the interference
    mixture (the four and up / down); idempotent."""
    for kind in ALL_TASKS:
        if task_name(kind) in seqio.TaskRegistry.names():
            continue
        seqio.TaskRegistry.add(
            task_name(kind),
            source=seqio.FunctionDataSource(_dataset_fn(kind), splits=list(SPLIT_SIZES)),
            preprocessors=[
                seqio.preprocessors.tokenize,
                seqio.preprocessors.append_eos_after_trim,
            ],
            output_features=OUTPUT_FEATURES,
            metric_fns=[exact_match],
        )
    if MIXTURE_NAME not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(MIXTURE_NAME, [task_name(k) for k in TASKS], default_rate=1.0)
    if INTERFERENCE_MIXTURE_NAME not in seqio.MixtureRegistry.names():
        kinds = [*TASKS, *INTERFERING_TASKS]
        seqio.MixtureRegistry.add(INTERFERENCE_MIXTURE_NAME, [task_name(k) for k in kinds],
                                  default_rate=1.0)


register()
