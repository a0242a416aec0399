"""tasks/synthetic.py: the interference mixture's two contradicting tasks."""

import numpy as np
import seqio

from hyperprompt.tasks import synthetic


def shifted(text: str, step: int) -> str:
    """Each letter of a..h moved `step` places, wrapping (ord arithmetic, not ALPHABET)."""
    return "".join(chr(ord("a") + (ord(c) - ord("a") + step) % 8) for c in text)


def examples(kind: str, n: int = 50) -> list[tuple[str, str]]:
    ds = synthetic._dataset_fn(kind)("validation", shuffle_files=False)
    return [(e["inputs"].decode(), e["targets"].decode())
            for e in ds.take(n).as_numpy_iterator()]


def test_up_and_down_contradict_on_the_same_strings():
    up, down = examples("up"), examples("down")
    for (up_in, up_out), (down_in, down_out) in zip(up, down, strict=True):
        string = up_in.removeprefix("up: ")
        assert down_in == f"down: {string}"
        assert up_out == shifted(string, 1) and down_out == shifted(string, -1)
        assert all(a != b for a, b in zip(up_out, down_out, strict=True))
    assert examples("up", 1)[0][0].removeprefix("up: ") == examples("copy", 1)[0][1]


def test_mixtures_keep_the_four_tasks_and_add_two():
    mtl = {t.name for t in seqio.get_mixture_or_task("synthetic_mtl").tasks}
    interference = {t.name for t in seqio.get_mixture_or_task("synthetic_interference").tasks}
    assert mtl == {"synthetic_copy", "synthetic_reverse", "synthetic_sort", "synthetic_count"}
    assert interference == mtl | {"synthetic_up", "synthetic_down"}
    rates = [seqio.get_mixture_or_task("synthetic_interference").get_rate(t)
             for t in seqio.get_mixture_or_task("synthetic_interference").tasks]
    np.testing.assert_array_equal(rates, np.ones(6))
