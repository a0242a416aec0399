"""A mixture whose examples carry `task_ids` inside seqio, for t5x's own data pipeline.

t5x reads tasks through `seqio.get_dataset`; `with_task_ids(name)` registers, once, a copy
of each of the mixture's tasks that appends its task id (its position in
`data.task_registry(name)`, as `hyperprompt train` numbers them) and a mixture of those
copies at the same rates, and returns that mixture's name. `feature_vocabulary` gives
t5x's model the mixture's own vocabularies (t5x's train checks they equal the tasks').
"""

from __future__ import annotations

import functools

import gin
import seqio
import tensorflow as tf

# Registers the tasks and their gin configurables while gin parses, before t5x locks it.
import hyperprompt.tasks  # noqa: F401
from hyperprompt import data

SUFFIX = "_with_task_ids"


def _append_task_id(ds: tf.data.Dataset, task_id: int) -> tf.data.Dataset:
    return ds.map(lambda ex: {**ex, data.TASK_IDS: tf.constant([task_id], tf.int32)})


@gin.configurable
def with_task_ids(name: str) -> str:
    """The name of `name`'s copy whose examples carry `task_ids` [1]."""
    mixture = name + SUFFIX
    if mixture in seqio.MixtureRegistry.names():
        return mixture
    registry, rates = data.task_registry(name), data.mixture_rates(name)
    copies = []
    for task_id, task_name in enumerate(registry):
        task = seqio.get_mixture_or_task(task_name)
        copy = task_name + SUFFIX
        if copy not in seqio.TaskRegistry.names():
            id_feature = seqio.Feature(seqio.PassThroughVocabulary(1), add_eos=False,
                                       dtype=tf.int32)
            seqio.TaskRegistry.add(
                copy, source=task.source,
                output_features={**task.output_features, data.TASK_IDS: id_feature},
                preprocessors=[*task.preprocessors,
                               functools.partial(_append_task_id, task_id=task_id)],
                postprocess_fn=task.postprocess_fn, metric_fns=task.metric_fns)
        copies.append(copy)
    seqio.MixtureRegistry.add(mixture, list(zip(copies, rates, strict=True)))
    return mixture


@gin.configurable
def feature_vocabulary(name: str, feature: str) -> seqio.Vocabulary:
    """The vocabulary of `feature` ('inputs' or 'targets') in mixture or task `name`."""
    return data.get_mixture_or_task(name).output_features[feature].vocabulary
