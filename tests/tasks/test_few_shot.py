"""k-shot tasks: k distinct training examples of the source task, the same for the same
seed, other splits untouched, composed from gin as the few-shot recipe does."""

import collections

import gin
import numpy as np
import pytest
import seqio
import tensorflow as tf

from hyperprompt import cli
from hyperprompt.errors import UsageError
from hyperprompt.tasks import few_shot, synthetic

SOURCE = "synthetic_reverse"


def pairs(task, split):
    """The split's (input, target) texts, sorted; read shuffled with a seed, as train does."""
    ds = seqio.get_mixture_or_task(task).get_dataset(None, split=split, shuffle=True, seed=1)
    return sorted((ex["inputs_pretokenized"], ex["targets_pretokenized"])
                  for ex in ds.as_numpy_iterator())


@pytest.mark.parametrize("k", few_shot.PAPER_SHOTS)
def test_k_distinct_source_examples(k):
    name = few_shot.k_shot_task(SOURCE, k, seed=0)
    assert name == f"{SOURCE}_{k}shot_seed0"
    chosen = pairs(name, "train")
    assert len(chosen) == k
    pool = collections.Counter(synthetic.letter_strings("train"))  # the source's examples
    drawn = collections.Counter(x.decode().removeprefix("reverse: ") for x, _ in chosen)
    assert all(n <= pool[s] for s, n in drawn.items())  # without replacement
    assert all(y.decode() == x.decode().removeprefix("reverse: ")[::-1] for x, y in chosen)


def test_the_same_seed_draws_the_same_examples_and_another_seed_others():
    first = pairs(few_shot.k_shot_task(SOURCE, 32, seed=1), "train")
    assert first == pairs(few_shot.k_shot_task(SOURCE, 32, seed=1), "train")
    seqio.TaskRegistry.remove(few_shot.k_shot_name(SOURCE, 32, 1))  # registered afresh
    assert first == pairs(few_shot.k_shot_task(SOURCE, 32, seed=1), "train")
    other = pairs(few_shot.k_shot_task(SOURCE, 32, seed=2), "train")
    assert len(set(first) & set(other)) < 8  # 32 of 50,000: overlaps are rare


def test_other_splits_are_the_source_tasks():
    name = few_shot.k_shot_task(SOURCE, 4, seed=0)
    assert pairs(name, "validation") == pairs(SOURCE, "validation")
    task = seqio.get_mixture_or_task(name)
    assert task.metric_fns == seqio.get_mixture_or_task(SOURCE).metric_fns


def test_errors_say_what_to_set():
    with pytest.raises(UsageError, match="choose k > 0"):
        few_shot.k_shot_task(SOURCE, 0, seed=0)
    with pytest.raises(UsageError, match="fewer than k=60000"):
        pairs(few_shot.k_shot_task(SOURCE, 60_000, seed=0), "train")
    with pytest.raises(UsageError, match="not a task with a train split"):
        few_shot.k_shot_task("synthetic_mtl", 4, seed=0)


def test_the_recipe_sets_the_k_shot_task_from_gin():
    cli.parse_gin(["models/t5_small.gin", "methods/hyperformer_pp.gin",
                   "experiments/hyperformer_few_shot.gin"],
                  ["MODEL_DIR = '/tmp/x'", "INITIAL_CHECKPOINT_PATH = '/run'",
                   f"FEW_SHOT_TASK = '{SOURCE}'", "FEW_SHOT_K = 100", "FEW_SHOT_SEED = 7"], [])
    try:
        assert gin.query_parameter("train.mixture_or_task_name").scoped_configurable_fn() \
            == f"{SOURCE}_100shot_seed7"
        model = gin.query_parameter("MODEL/macro.value").scoped_configurable_fn()
        method = model.module.conditioner
        assert (method.variant, method.num_tasks, method.source_tasks) == (
            "hyperformer_pp", 1, 8)
        assert [(g.pattern, g.frozen) for g in method.param_groups()] == [
            ("conditioner/new_task_embedding", False), (".*", True)]
    finally:
        gin.clear_config()
    np.testing.assert_equal(len(pairs(f"{SOURCE}_100shot_seed7", "train")), 100)


def test_later_epochs_read_the_k_examples_not_the_whole_split():
    reads = []

    def dataset_fn(split, shuffle_files, seed=None):
        def read(i):
            reads.append(int(i))
            return i
        return tf.data.Dataset.range(1000).map(
            lambda i: {"id": tf.py_function(read, [i], tf.int64)})

    seqio.TaskRegistry.add("counted_source", source=seqio.FunctionDataSource(
        dataset_fn, splits=["train"]), preprocessors=[], output_features={})
    try:
        source = seqio.get_mixture_or_task(few_shot.k_shot_task("counted_source", 8, seed=0))
        epochs = source.source.get_dataset("train", shuffle=False).repeat(3)
        ids = [int(ex["id"]) for ex in epochs.as_numpy_iterator()]
    finally:
        seqio.TaskRegistry.remove("counted_source")
        seqio.TaskRegistry.remove(few_shot.k_shot_name("counted_source", 8, 0))
    assert ids == ids[:8] * 3 and len(set(ids)) == 8
    assert len(reads) <= 1000  # the first epoch, up to the 8th chosen example; then memory
