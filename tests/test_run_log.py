"""train_log.jsonl: append, truncate to the resumed step, survive a cut-off last line."""

import json

from hyperprompt.run_log import LOG_FILE, RunLog


def test_resume_drops_later_steps_and_a_truncated_line(tmp_path):
    log = RunLog(str(tmp_path), 0)
    for step in (1, 2, 3):
        log.append("train", step, {"loss": 1.0 / step})
    log.append("eval", 3, {"eval/x/exact_match": 50.0})
    with open(tmp_path / LOG_FILE, "a") as f:
        f.write('{"kind": "train", "step": 4, "lo')  # killed mid-write
    resumed = RunLog(str(tmp_path), 2)
    assert [(r["kind"], r["step"]) for r in resumed.records] == [("train", 1), ("train", 2)]
    lines = (tmp_path / LOG_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    resumed.append("train", 3, {"loss": 0.1})
    assert resumed.history() == {"train": [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5},
                                           {"step": 3, "loss": 0.1}], "eval": []}
