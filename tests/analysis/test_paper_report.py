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
