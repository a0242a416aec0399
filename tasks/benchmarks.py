"""Benchmark averages as the GLUE and SuperGLUE leaderboards compute them.

A task's score is the mean of its metrics (MRPC's F1 and accuracy count as one
number); MNLI's score is the mean of matched and mismatched accuracy; the
benchmark score is the unweighted mean over its tasks. The diagnostics (AX,
AX-b, AX-g) are not part of the score. Check: BERT-large's leaderboard rows give
80.5 (GLUE) and 69.0 (SuperGLUE) this way (tests/tasks/test_benchmarks.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Benchmark -> leaderboard task -> the eval tasks whose scores it averages.
BENCHMARKS = {
    "GLUE": {
        "CoLA": ("glue_cola",), "SST-2": ("glue_sst2",), "MRPC": ("glue_mrpc",),
        "STS-B": ("glue_stsb",), "QQP": ("glue_qqp",),
        "MNLI": ("glue_mnli_matched", "glue_mnli_mismatched"),
        "QNLI": ("glue_qnli",), "RTE": ("glue_rte",), "WNLI": ("glue_wnli",),
    },
    "SuperGLUE": {
        "BoolQ": ("super_glue_boolq",), "CB": ("super_glue_cb",), "COPA": ("super_glue_copa",),
        "MultiRC": ("super_glue_multirc",), "ReCoRD": ("super_glue_record",),
        "RTE": ("super_glue_rte",), "WiC": ("super_glue_wic",),
        # Either WSC format scores the leaderboard's WSC.
        "WSC": ("super_glue_wsc_simple", "super_glue_wsc"),
    },
}


def task_score(metrics: Mapping[str, float]) -> float:
    """One number per task: the mean of its metrics."""
    return float(np.mean(list(metrics.values())))


def benchmark_scores(results: Mapping[str, Mapping[str, float]]
                     ) -> dict[str, tuple[float, int, int]]:
    """{benchmark: (score, tasks present, tasks in the benchmark)} for benchmarks with results.

    With some tasks missing (T5 leaves WNLI out of validation), the score is the
    mean over the tasks present; the counts say so.
    """
    out = {}
    for benchmark, tasks in BENCHMARKS.items():
        scores = []
        for eval_tasks in tasks.values():
            present = [task_score(results[t]) for t in eval_tasks if results.get(t)]
            if present:
                scores.append(float(np.mean(present)))
        if scores:
            out[benchmark] = (float(np.mean(scores)), len(scores), len(tasks))
    return out
