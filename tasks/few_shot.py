"""k-shot versions of tasks: the same task with its training split cut to k examples drawn
by a seed (ATTEMPT's few-shot adaptation, Asai et al. 2022, Section 5.2 and Appendix C.8:
k in {4, 16, 32}, three seeds, as Mahabadi et al. 2021b).

`few_shot_<k>_seed<s>_<task>` (e.g. MIXTURE_OR_TASK_NAME='few_shot_16_seed0_super_glue_cb')
trains on k examples of the task's training split, taken from its first SHUFFLE_BUFFER
examples shuffled with seed s; validation and test are the task's own, with its metrics.
"""

from __future__ import annotations

import seqio
import tensorflow as tf

from hyperprompt.tasks import super_glue  # noqa: F401  (registers the tasks it cuts)

SHOTS = (4, 16, 32)
SEEDS = (0, 1, 2)
SHUFFLE_BUFFER = 100_000  # all of BoolQ (9,427) and CB (250): a uniform draw
# The paper's few-shot targets that exist here (SciTail is not registered).
TASKS = ("super_glue_boolq", "super_glue_cb")


def task_name(task: str, shots: int, seed: int) -> str:
    return f"few_shot_{shots}_seed{seed}_{task}"


def register_task(task: str, shots: int, seed: int) -> str:
    """Register the k-shot version of `task` (idempotent); returns its name."""
    name = task_name(task, shots, seed)
    if name in seqio.TaskRegistry.names():
        return name
    base = seqio.get_mixture_or_task(task)

    def dataset_fn(split: str, shuffle_files: bool, seed_: int | None = None) -> tf.data.Dataset:
        del shuffle_files, seed_  # the k examples are fixed by `seed`
        ds = base.source.get_dataset(split=split, shuffle=False)
        if split == "train":
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=False)
            ds = ds.take(shots)
        return ds

    seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(dataset_fn, splits=list(base.splits)),
        preprocessors=list(base.preprocessors), output_features=base.output_features,
        postprocess_fn=base.postprocessor, metric_fns=list(base.metric_fns))
    return name


def register() -> None:
    for task in TASKS:
        for shots in SHOTS:
            for seed in SEEDS:
                register_task(task, shots, seed)


register()
