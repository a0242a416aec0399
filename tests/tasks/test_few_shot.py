"""k-shot tasks: k training examples of the task's own, fixed by the seed; other splits
and the metrics unchanged."""

import seqio

import hyperprompt.tasks  # noqa: F401  (registers the tasks)
from hyperprompt.tasks import few_shot, synthetic

LENGTHS = {"inputs": 20, "targets": 12}


def texts(task: str, split: str) -> list[str]:
    ds = seqio.get_mixture_or_task(task).get_dataset(LENGTHS, split=split, shuffle=False,
                                                    try_in_mem_cache=False)
    return [r["inputs_pretokenized"].decode() for r in ds.as_numpy_iterator()]


def test_k_examples_of_the_task_fixed_by_the_seed():
    base_train = {f"echo: {s}" for s in synthetic.letter_strings("train")}
    draws = {}
    for seed in (0, 1):
        name = few_shot.register_task("synthetic_echo", 4, seed)
        draws[seed] = texts(name, "train")
        assert len(draws[seed]) == 4 and set(draws[seed]) <= base_train
        assert texts(name, "train") == draws[seed]  # the same k each time
    assert draws[0] != draws[1]
    name = few_shot.task_name("synthetic_echo", 4, 0)
    assert texts(name, "validation") == texts("synthetic_echo", "validation")
    assert seqio.get_mixture_or_task(name).metric_fns == seqio.get_mixture_or_task(
        "synthetic_echo").metric_fns


def test_the_papers_targets_are_registered():
    names = seqio.TaskRegistry.names()
    assert all(few_shot.task_name(t, k, s) in names for t in few_shot.TASKS
               for k in (4, 16, 32) for s in (0, 1, 2))
