"""Leaderboard averages on the leaderboards' own rows."""

import pytest

from hyperprompt.tasks.benchmarks import benchmark_scores

# BERT-large on the GLUE leaderboard (gluebenchmark.com): score 80.5.
BERT_GLUE = {
    "glue_cola": {"mcc": 60.5}, "glue_sst2": {"accuracy": 94.9},
    "glue_mrpc": {"f1": 89.3, "accuracy": 85.4}, "glue_stsb": {"pearson": 87.6, "spearman": 86.5},
    "glue_qqp": {"f1": 72.1, "accuracy": 89.3}, "glue_mnli_matched": {"accuracy": 86.7},
    "glue_mnli_mismatched": {"accuracy": 85.9}, "glue_qnli": {"accuracy": 92.7},
    "glue_rte": {"accuracy": 70.1}, "glue_wnli": {"accuracy": 65.1},
}
# BERT-large on the SuperGLUE leaderboard (super.gluebenchmark.com): score 69.0.
BERT_SUPER_GLUE = {
    "super_glue_boolq": {"accuracy": 77.4}, "super_glue_cb": {"f1_macro": 75.7, "accuracy": 83.6},
    "super_glue_copa": {"accuracy": 70.6}, "super_glue_multirc": {"f1a": 70.0, "em": 24.1},
    "super_glue_record": {"f1": 72.0, "em": 71.3}, "super_glue_rte": {"accuracy": 71.7},
    "super_glue_wic": {"accuracy": 69.6}, "super_glue_wsc": {"accuracy": 64.4},
}


def test_leaderboard_scores_of_bert_large():
    scores = benchmark_scores({**BERT_GLUE, **BERT_SUPER_GLUE})
    assert scores["GLUE"][0] == pytest.approx(80.5, abs=0.05)
    assert scores["GLUE"][1:] == (9, 9)
    assert scores["SuperGLUE"][0] == pytest.approx(69.0, abs=0.05)
    assert scores["SuperGLUE"][1:] == (8, 8)


def test_missing_tasks_are_left_out_and_counted():
    without_wnli = {k: v for k, v in BERT_GLUE.items() if k != "glue_wnli"}
    score, present, total = benchmark_scores(without_wnli)["GLUE"]
    assert (present, total) == (8, 9)
    assert score == pytest.approx((80.52 * 9 - 65.1) / 8, abs=0.01)
    assert benchmark_scores({"synthetic_copy": {"exact_match": 1.0}}) == {}
