"""Leaderboard files: names, header, order and label spelling on a tiny prediction set."""

import json

import pytest

from hyperprompt.tasks.postprocessors import INVALID
from hyperprompt.tasks.submission import write_submission


def _rows(pairs):
    return [({"idx": idx}, label) for idx, label in pairs]


def test_glue_tsv_files(tmp_path):
    predictions = {
        "glue_cola": _rows([(1, 0), (0, 1)]),
        "glue_stsb": _rows([(0, 3.8), (1, 7.0), (2, INVALID)]),
        "glue_mnli_mismatched": _rows([(0, 2), (1, 0), (2, 1)]),
        "glue_qnli": _rows([(0, INVALID)]),
    }
    with pytest.warns(UserWarning, match="WNLI.tsv"):
        write_submission(predictions, str(tmp_path))
    assert (tmp_path / "CoLA.tsv").read_text() == "index\tprediction\n0\t1\n1\t0\n"
    assert (tmp_path / "STS-B.tsv").read_text() == (
        "index\tprediction\n0\t3.800\n1\t5.000\n2\t0.000\n")  # clipped to [0, 5]
    assert (tmp_path / "MNLI-mm.tsv").read_text() == (
        "index\tprediction\n0\tcontradiction\n1\tentailment\n2\tneutral\n")
    # An unparsable prediction still gets a label (the first class).
    assert (tmp_path / "QNLI.tsv").read_text() == "index\tprediction\n0\tentailment\n"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_super_glue_jsonl_files(tmp_path):
    multirc = [({"idx_paragraph": p, "idx_question": q, "idx_answer": a}, {"value": v})
               for p, q, a, v in [(0, 1, 1, 0), (0, 1, 0, 1), (0, 0, 2, INVALID), (1, 2, 3, 1)]]
    record = [({"idx_query": 4}, "Paris"), ({"idx_query": 4}, "Paris"), ({"idx_query": 2}, "X")]
    predictions = {
        "super_glue_boolq": _rows([(1, 0), (0, 1)]),
        "super_glue_cb": _rows([(0, 2)]),
        "super_glue_copa": _rows([(0, 1)]),
        "super_glue_wic": _rows([(0, 0)]),
        "super_glue_wsc_simple": _rows([(0, 1), (1, 0)]),
        "super_glue_axg": _rows([(0, 1)]),
        "super_glue_multirc": multirc,
        "super_glue_record": record,
    }
    with pytest.warns(UserWarning, match="AX-b.jsonl, RTE.jsonl"):
        write_submission(predictions, str(tmp_path))
    assert _jsonl(tmp_path / "BoolQ.jsonl") == [{"idx": 0, "label": "true"},
                                                {"idx": 1, "label": "false"}]
    assert _jsonl(tmp_path / "CB.jsonl") == [{"idx": 0, "label": "neutral"}]
    assert _jsonl(tmp_path / "COPA.jsonl") == [{"idx": 0, "label": 1}]
    assert _jsonl(tmp_path / "WiC.jsonl") == [{"idx": 0, "label": "false"}]
    assert _jsonl(tmp_path / "WSC.jsonl") == [{"idx": 0, "label": "True"},
                                              {"idx": 1, "label": "False"}]
    assert _jsonl(tmp_path / "AX-g.jsonl") == [{"idx": 0, "label": "not_entailment"}]
    assert _jsonl(tmp_path / "ReCoRD.jsonl") == [{"idx": 2, "label": "X"},
                                                 {"idx": 4, "label": "Paris"}]
    assert _jsonl(tmp_path / "MultiRC.jsonl") == [
        {"idx": 0, "passage": {"questions": [
            {"idx": 0, "answers": [{"idx": 2, "label": 0}]},
            {"idx": 1, "answers": [{"idx": 0, "label": 1}, {"idx": 1, "label": 0}]}]}},
        {"idx": 1, "passage": {"questions": [{"idx": 2, "answers": [{"idx": 3, "label": 1}]}]}},
    ]


def test_other_tasks_write_nothing(tmp_path):
    assert write_submission({"synthetic_copy": [({}, "x")]}, str(tmp_path / "out")) == []
    assert not (tmp_path / "out").exists()
