"""k-shot versions of registered tasks: the first k training examples of a seeded shuffle.

`k_shot_task("super_glue_cb", 16, seed=0)` registers `super_glue_cb_16shot_seed0` (once)
and returns its name: the same task (preprocessing, metrics, other splits) whose train split
holds k examples drawn uniformly without replacement, the same for the same seed. gin sets
it as the run's task (experiments/hyperformer_few_shot.gin):

    MIXTURE_OR_TASK_NAME = @few_shot.k_shot_task()
"""

from __future__ import annotations

import seqio
import tensorflow as tf

from hyperprompt.errors import UsageError

# k of the HyperFormer++ paper's few-shot transfer experiments (Karimi Mahabadi et al. 2021).
PAPER_SHOTS = (4, 16, 32, 100, 500, 1000)


def k_shot_name(task: str, k: int, seed: int) -> str:
    return f"{task}_{k}shot_seed{seed}"


def k_shot_task(task: str, k: int, seed: int) -> str:
    """Register the k-shot version of `task` (drawn by `seed`) and return its name."""
    name = k_shot_name(task, k, seed)
    if name in seqio.TaskRegistry.names():
        return name
    from hyperprompt.data import get_mixture_or_task

    base = get_mixture_or_task(task)
    if not isinstance(base, seqio.Task) or "train" not in base.splits:
        raise UsageError(f"{task!r} is not a task with a train split; name one (e.g. "
                         f"'super_glue_cb') for its k-shot version.")
    if k <= 0:
        raise UsageError(f"k={k} examples: choose k > 0 (the paper's: {PAPER_SHOTS}).")

    draw = [seed, 0]  # the subset's seed (the pipeline's own shuffles it afterwards)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        del shuffle_files, seed
        ds = base.source.get_dataset(split=split, shuffle=False)
        if split != "train":
            return ds
        size = int(ds.cardinality())
        if size < 0:  # unknown to tf.data: count (in the input pipeline, not in Python)
            size = int(ds.reduce(0, lambda count, _: count + 1))
        if size < k:
            raise UsageError(f"{task} has {size} training examples, fewer than k={k}.")
        chosen = tf.random.experimental.stateless_shuffle(tf.range(size), seed=draw)[:k]
        keep = tf.scatter_nd(chosen[:, None], tf.ones([k], tf.bool), [size])  # [size]
        # Stop reading at the k-th kept example and hold the k in memory: every later epoch
        # reads the cache, not the whole split again (MNLI: 393k examples per 4-shot epoch).
        return ds.enumerate().filter(lambda i, _: keep[i]).take(k).map(lambda _, ex: ex).cache()

    seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(dataset_fn, splits=list(base.splits)),
        preprocessors=base.preprocessors, output_features=base.output_features,
        postprocess_fn=base.postprocessor, metric_fns=base.metric_fns)
    return name
