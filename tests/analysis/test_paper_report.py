"""`report --paper`: a hand-written eval log beside HyperGrid's row, differences by hand."""

import json

import pytest

from hyperprompt import cli

LOG = [
    {"kind": "eval", "step": 100, "eval/glue_cola/mcc": 1.0, "eval/super_glue_cb/f1_macro": 1.0,
     "eval/super_glue_cb/accuracy": 1.0},  # an earlier evaluation: not the one compared
    {"kind": "train", "step": 200, "loss": 0.5},
    {"kind": "eval", "step": 200,
     "eval/glue_cola/mcc": 59.0,
     "eval/glue_mrpc/f1": 90.0, "eval/glue_mrpc/accuracy": 86.0,  # MRPC score 88
     "eval/glue_mnli_matched/accuracy": 90.0, "eval/glue_mnli_mismatched/accuracy": 92.0,
     "eval/super_glue_cb/f1_macro": 85.0, "eval/super_glue_cb/accuracy": 93.0,
     "eval/super_glue_wsc_simple/accuracy": 90.0},
]

# Paper row "Ours (11B)" of HyperGrid's Tables 5 and 6 (seed 001) -> run - paper.
EXPECTED = {
    ("Table 5", "CoLA", "mcc"): 59.0 - 69.0,
    ("Table 5", "MR", "score"): 88.0 - 89.2,
    ("Table 5", "MNLI", "score"): 91.0 - 91.3,
    ("Table 5", "Avg", "benchmark_score"): (59.0 + 88.0 + 91.0) / 3 - 89.4,
    ("Table 6", "CB", "f1_macro"): 85.0 - 85.5,
    ("Table 6", "CB", "accuracy"): 93.0 - 92.0,
    ("Table 6", "WSC", "accuracy"): 90.0 - 92.1,
    ("Table 6", "Avg", "benchmark_score"): ((85.0 + 93.0) / 2 + 90.0) / 2 - 87.7,
}


def write_log(model_dir, records):
    model_dir.mkdir()
    (model_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return model_dir


def report(model_dir, *flags) -> int:
    return cli.main(["report", *flags, f"--gin.MODEL_DIR='{model_dir}'"])


def test_report_paper_sets_the_last_eval_beside_the_row(tmp_path, capsys):
    model_dir = write_log(tmp_path / "run", LOG)
    assert report(model_dir, "--paper", "hypergrid", "--row", "ours-11b") == 0
    written = json.loads((model_dir / "report" / "paper_hypergrid_ours-11b.json").read_text())
    assert written["step"] == 200 and written["row"] == "Ours (11B)"
    lines = {(e["table"], e["column"], e["metric"]): e for e in written["entries"]}
    assert len(lines) == 10 + 12  # every number of the row, with or without a run value
    for key, difference in EXPECTED.items():
        assert lines[key]["difference"] == pytest.approx(difference), key
        assert lines[key]["run_value"] - lines[key]["paper_value"] == pytest.approx(difference)
    others = [e for k, e in lines.items() if k not in EXPECTED]
    assert all(e["run_value"] is None and e["difference"] is None for e in others)
    note = lines[("Table 5", "Avg", "benchmark_score")]["run_note"]
    assert note == "the run's mean over 3/9 tasks"
    out = capsys.readouterr().out
    assert "-10.0" in out and "+1.0" in out and "001_21fcbd357462eaf1.txt, Table 6" in out


@pytest.mark.parametrize("flags, message", [
    (["--paper", "hypergird"], "no paper named 'hypergird'; --paper is one of attempt, "
                               "hyperformer, hypergrid, hyperprompt."),
    (["--paper", "hypergrid"], "hypergrid has 11 rows: pick one with --row; rows: "
                               "bert-ensemble = BERT*, BERT (ensemble) (Table 5);"),
    (["--paper", "hyperprompt", "--row", "mtl"], "no row 'mtl' in hyperprompt; rows: "
                                                 "hyperprompt-base = HyperPrompt, T5 Base"),
    (["--paper", "hyperformer"], "no result table of hyperformer is stored: The GLUE results"),
])
def test_wrong_paper_or_row_lists_what_there_is(tmp_path, capsys, flags, message):
    assert report(write_log(tmp_path / "run", LOG), *flags) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_run_without_log_or_evaluations(tmp_path, capsys):
    flags = ["--paper", "hypergrid", "--row", "ours-3b"]
    assert report(tmp_path, *flags) == cli.EXIT_USAGE
    assert "train_log.jsonl does not exist" in capsys.readouterr().err
    assert report(write_log(tmp_path / "run", LOG[1:2]), *flags) == cli.EXIT_USAGE
    assert "has no evaluations" in capsys.readouterr().err


FULL = {"kind": "eval", "step": 300, **{f"eval/{k}": v for k, v in {
    "glue_cola/mcc": 50.0, "glue_sst2/accuracy": 90.0, "glue_mrpc/f1": 80.0,
    "glue_mrpc/accuracy": 70.0, "glue_stsb/pearson": 85.0, "glue_stsb/spearman": 87.0,
    "glue_qqp/f1": 70.0, "glue_qqp/accuracy": 90.0, "glue_mnli_matched/accuracy": 80.0,
    "glue_mnli_mismatched/accuracy": 82.0, "glue_qnli/accuracy": 88.0,
    "glue_rte/accuracy": 70.0,  # every GLUE task but WNLI, as T5's validation mixture
    "super_glue_boolq/accuracy": 80.0, "super_glue_cb/f1_macro": 70.0,
    "super_glue_cb/accuracy": 90.0, "super_glue_copa/accuracy": 60.0,
    "super_glue_multirc/f1a": 70.0, "super_glue_multirc/em": 30.0,
    "super_glue_record/f1": 80.0, "super_glue_record/em": 78.0,
    "super_glue_rte/accuracy": 75.0, "super_glue_wic/accuracy": 65.0,
    "super_glue_wsc_simple/accuracy": 70.0}.items()}}


def test_benchmark_averages_and_their_coverage_notes(tmp_path):
    model_dir = write_log(tmp_path / "run", [FULL])
    assert report(model_dir, "--paper", "hypergrid", "--row", "ours-3b") == 0
    written = json.loads((model_dir / "report" / "paper_hypergrid_ours-3b.json").read_text())
    lines = {(e["table"], e["column"], e["metric"]): e for e in written["entries"]}
    glue = (50 + 90 + (80 + 70) / 2 + (85 + 87) / 2 + (70 + 90) / 2 + (80 + 82) / 2 + 88 + 70) / 8
    super_glue = (80 + (70 + 90) / 2 + 60 + (70 + 30) / 2 + (80 + 78) / 2 + 75 + 65 + 70) / 8
    expected = {("Table 5", "Avg", "benchmark_score"): glue - 88.2,
                ("Table 5", "STS", "score"): 86.0 - 91.6,
                ("Table 6", "Avg", "benchmark_score"): super_glue - 84.7,
                ("Table 6", "MultiRC", "em"): 30.0 - 58.7,
                ("Table 6", "Record", "em"): 78.0 - 90.3}
    for key, difference in expected.items():
        assert lines[key]["difference"] == pytest.approx(difference), key
    assert lines[("Table 5", "WNLI", "accuracy")]["run_value"] is None
    assert lines[("Table 5", "Avg", "benchmark_score")]["run_note"] == \
        "the run's mean over 8/9 tasks"
    assert lines[("Table 6", "Avg", "benchmark_score")]["run_note"] == ""  # all 8 tasks
