"""Leaderboard submission files from test-split predictions.

GLUE (gluebenchmark.com): one TSV per task, header "index<TAB>prediction", rows
in index order; CoLA, SST-2, MRPC, QQP and WNLI as 0/1, STS-B as a number in
[0, 5], the NLI tasks as label words. SuperGLUE (super.gluebenchmark.com): one
JSONL per task, {"idx": ..., "label": ...}; BoolQ and WiC "true"/"false", WSC
"True"/"False", COPA 0/1, the NLI tasks label words, ReCoRD the answer text,
MultiRC nested by paragraph -> question -> answer. Zip the folder to submit.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence

from hyperprompt.files import atomic_write
from hyperprompt.tasks import glue, super_glue
from hyperprompt.tasks.postprocessors import is_invalid

# Eval task -> (file name, label writer). Predictions are postprocessed labels.
_ids = int
_word = lambda classes: lambda y: classes[y]  # noqa: E731
GLUE_FILES: dict[str, tuple[str, Callable]] = {
    "glue_cola": ("CoLA.tsv", _ids), "glue_sst2": ("SST-2.tsv", _ids),
    "glue_mrpc": ("MRPC.tsv", _ids), "glue_qqp": ("QQP.tsv", _ids),
    "glue_stsb": ("STS-B.tsv", lambda y: f"{min(max(float(y), 0.0), 5.0):.3f}"),
    "glue_mnli_matched": ("MNLI-m.tsv", _word(glue.label_classes("mnli"))),
    "glue_mnli_mismatched": ("MNLI-mm.tsv", _word(glue.label_classes("mnli"))),
    "glue_qnli": ("QNLI.tsv", _word(glue.label_classes("qnli"))),
    "glue_rte": ("RTE.tsv", _word(glue.label_classes("rte"))),
    "glue_wnli": ("WNLI.tsv", _ids),
    "glue_ax": ("AX.tsv", _word(glue.label_classes("ax"))),
}
SUPER_GLUE_FILES: dict[str, tuple[str, Callable]] = {
    "super_glue_boolq": ("BoolQ.jsonl", lambda y: "true" if y else "false"),
    "super_glue_cb": ("CB.jsonl", _word(super_glue.label_classes("cb"))),
    "super_glue_copa": ("COPA.jsonl", _ids),
    "super_glue_rte": ("RTE.jsonl", _word(super_glue.label_classes("rte"))),
    "super_glue_wic": ("WiC.jsonl", lambda y: "true" if y else "false"),
    "super_glue_wsc_simple": ("WSC.jsonl", lambda y: str(bool(y))),
    "super_glue_wsc": ("WSC.jsonl", lambda y: str(bool(y))),
    "super_glue_axb": ("AX-b.jsonl", _word(super_glue.label_classes("axb"))),
    "super_glue_axg": ("AX-g.jsonl", _word(super_glue.label_classes("axg"))),
    "super_glue_multirc": ("MultiRC.jsonl", None),
    "super_glue_record": ("ReCoRD.jsonl", None),
}
Predictions = Sequence[tuple[Mapping, object]]  # (raw example, postprocessed prediction)


def _valid(prediction, fallback=0):
    """An unparsable prediction still needs a label in the file: the first class."""
    return fallback if is_invalid(prediction) else prediction


def _glue_tsv(path: str, rows: Predictions, label: Callable) -> None:
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["index", "prediction"])
        for example, prediction in sorted(rows, key=lambda r: int(r[0]["idx"])):
            writer.writerow([int(example["idx"]), label(_valid(prediction))])


def _multirc(rows: Predictions) -> list[dict]:
    """One line per paragraph: {"idx", "passage": {"questions": [{"idx", "answers": [...]}]}}."""
    tree = collections.defaultdict(lambda: collections.defaultdict(list))
    for example, prediction in rows:
        tree[int(example["idx_paragraph"])][int(example["idx_question"])].append(
            {"idx": int(example["idx_answer"]), "label": int(_valid(prediction["value"]))})
    return [{"idx": p, "passage": {"questions": [
        {"idx": q, "answers": sorted(answers, key=lambda a: a["idx"])}
        for q, answers in sorted(questions.items())]}} for p, questions in sorted(tree.items())]


def _record(rows: Predictions) -> list[dict]:
    """One line per query (its copies, one per answer, share one prediction)."""
    by_query = {}
    for example, prediction in rows:
        by_query.setdefault(int(example["idx_query"]), str(prediction))
    return [{"idx": q, "label": text} for q, text in sorted(by_query.items())]


def _super_glue_jsonl(path: str, task: str, rows: Predictions, label: Callable | None) -> None:
    if task == "super_glue_multirc":
        lines = _multirc(rows)
    elif task == "super_glue_record":
        lines = _record(rows)
    else:
        lines = [{"idx": int(ex["idx"]), "label": label(_valid(y))}
                 for ex, y in sorted(rows, key=lambda r: int(r[0]["idx"]))]
    with atomic_write(path) as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)


def write_submission(predictions: Mapping[str, Predictions], out_dir: str) -> list[str]:
    """Write the leaderboard files for the benchmark tasks in `predictions`; returns paths.

    Tasks outside GLUE/SuperGLUE are ignored; a benchmark with some of its files
    missing gets a warning naming them (the servers want every file).
    """
    paths = []
    for files, write in ((GLUE_FILES, "tsv"), (SUPER_GLUE_FILES, "jsonl")):
        present = [t for t in predictions if t in files]
        if not present:
            continue
        os.makedirs(out_dir, exist_ok=True)
        for task in present:
            name, label = files[task]
            path = os.path.join(out_dir, name)
            if write == "tsv":
                _glue_tsv(path, predictions[task], label)
            else:
                _super_glue_jsonl(path, task, predictions[task], label)
            paths.append(path)
        missing = sorted({files[t][0] for t in files} - {os.path.basename(p) for p in paths})
        if missing:
            warnings.warn(f"the leaderboard expects {', '.join(missing)} as well; they are "
                          f"not in {out_dir} (add those tasks' test predictions).", stacklevel=2)
    return paths
