"""Registering a seqio Task over a TFDS dataset with T5's vocabulary and features."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import seqio

from hyperprompt.tasks.vocabulary import T5Vocabulary

VOCABULARY = T5Vocabulary()
STANDARD_SPLITS = ("train", "validation", "test")
OUTPUT_FEATURES = {
    "inputs": seqio.Feature(VOCABULARY, add_eos=True, required=False),
    "targets": seqio.Feature(VOCABULARY, add_eos=True),
}


def add_tfds_task(name: str, tfds_name: str, text_preprocessors: Sequence[Callable],
                  postprocess_fn: Callable | None, metric_fns: Sequence[Callable],
                  splits: Sequence[str] = STANDARD_SPLITS) -> None:
    """Register `name` (idempotent): TFDS source -> text format -> tokens with EOS.

    TFDS reads TFDS_DATA_DIR (default ~/tensorflow_datasets) and downloads and
    prepares a dataset on its first use.
    """
    if name in seqio.TaskRegistry.names():
        return
    seqio.TaskRegistry.add(
        name,
        source=seqio.TfdsDataSource(tfds_name=tfds_name, splits=list(splits)),
        preprocessors=[*text_preprocessors, seqio.preprocessors.tokenize,
                       seqio.CacheDatasetPlaceholder(),
                       seqio.preprocessors.append_eos_after_trim],
        postprocess_fn=postprocess_fn,
        metric_fns=list(metric_fns),
        output_features=OUTPUT_FEATURES,
    )
