"""Inference: decode a split of every task, or a user's file of inputs, to JSONL.

A user file is JSONL lines {"task": name, "input": text} or plain text lines
(all for INFER_TASK). Bytes that are not UTF-8 are replaced (U+FFFD) and inputs
longer than TASK_FEATURE_LENGTHS['inputs'] are truncated; both with a warning,
never a crash.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import seqio

from hyperprompt import data
from hyperprompt.errors import UsageError
from hyperprompt.eval import Evaluator, Predictor, restored_run, saved_registry
from hyperprompt.files import write_jsonl
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.tasks.submission import write_submission


def read_inputs(path: str, default_task: str | None) -> list[tuple[str, str]]:
    """(task, text) per non-empty line; invalid UTF-8 replaced with a warning."""
    try:
        with open(path, "rb") as f:
            raw_lines = [line.rstrip(b"\r\n") for line in f if line.strip()]
    except OSError as e:
        raise UsageError(f"INFER_INPUT_FILE={path!r} cannot be read ({e.strerror or e}); point "
                         f"it at a file of JSONL or text lines.") from None
    examples, bad = [], 0
    for number, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line, bad = raw.decode("utf-8", errors="replace"), bad + 1
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
                examples.append((record.get("task", default_task), str(record["input"])))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise UsageError(f"{path}:{number} is not a JSON object with an \"input\" "
                                 f"field (and optionally \"task\").") from None
        else:
            examples.append((default_task, line))
        if examples[-1][0] is None:
            raise UsageError(f"{path}:{number} names no task; add \"task\" to the JSON line or "
                             f"set INFER_TASK.")
    if bad:
        warnings.warn(f"{bad} line(s) of {path} are not valid UTF-8; the bad bytes were "
                      f"replaced by U+FFFD.", stacklevel=2)
    return examples


def encode_inputs(texts: Sequence[str], vocab: seqio.Vocabulary, length: int) -> np.ndarray:
    """[n, length] int32 token ids with EOS, truncated (with a warning) to fit."""
    out = np.zeros((len(texts), length), np.int32)
    truncated = 0
    for i, text in enumerate(texts):
        ids = list(vocab.encode(text))
        if len(ids) > length - 1:
            ids, truncated = ids[: length - 1], truncated + 1
        out[i, : len(ids) + 1] = ids + [vocab.eos_id]
    if truncated:
        warnings.warn(f"{truncated} input(s) longer than {length - 1} tokens were truncated; "
                      f"raise TASK_FEATURE_LENGTHS['inputs'] to keep them whole.", stacklevel=2)
    return out


def infer(
    *,
    model: EncoderDecoderModel,
    model_dir: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int,
    split: str = "validation",
    num_examples: int | None = None,
    input_file: str | None = None,
    task: str | None = None,
    model_parallel: int = 1,
) -> str | None:
    """Write predictions as JSONL ({step, task, input, prediction}); returns the output path
    (None: the input file holds no inputs).

    Without `input_file`: MODEL_DIR/inference/<split>/<task>.jsonl for every eval task,
    and for split 'test' the GLUE/SuperGLUE leaderboard files in .../test/submission/.
    With it: MODEL_DIR/inference/<file name>.jsonl.
    """
    registry = saved_registry(model_dir)
    examples = read_inputs(input_file, task) if input_file else None
    if examples == []:
        warnings.warn(f"INFER_INPUT_FILE={input_file!r} holds no inputs (empty or blank lines "
                      f"only); nothing was predicted.", stacklevel=1)
        return None
    for name in {t for t, _ in examples or []} - set(registry):
        raise UsageError(f"task {name!r} is not one this model was trained on: {registry}.")
    with restored_run(model, model_dir, task_feature_lengths, batch_size,
                      model_parallel) as (registry, mesh, step, params):
        if examples is None:
            return _infer_splits(model, params, step, registry, task_feature_lengths,
                                 batch_size, mesh, split, num_examples, model_dir)
        name = os.path.splitext(os.path.basename(input_file))[0]
        path = os.path.join(model_dir, "inference", f"{name}.jsonl")
        rows = _predict_texts(model, params, examples, registry, task_feature_lengths,
                              batch_size, mesh)
        _write(path, [{"step": int(step), **row} for row in rows])
        return path


def _predict_texts(model, params, examples, registry, lengths, batch_size, mesh) -> list[dict]:
    vocab = seqio.get_mixture_or_task(registry[0]).output_features["inputs"].vocabulary
    predictor = Predictor(model, batch_size, mesh, vocab.eos_id)
    tokens = encode_inputs([text for _, text in examples], vocab, lengths["inputs"])
    task_ids = np.array([registry.index(t) for t, _ in examples], np.int32)
    rows = []
    for start in range(0, len(examples), batch_size):
        batch = {"encoder_input_tokens": tokens[start:start + batch_size],
                 "decoder_input_tokens": np.zeros((len(task_ids[start:start + batch_size]),
                                                   lengths["targets"]), np.int32),
                 "task_ids": task_ids[start:start + batch_size]}
        for (task, text), row in zip(examples[start:start + batch_size],
                                     predictor(params, batch), strict=True):
            out_vocab = seqio.get_mixture_or_task(task).output_features["targets"].vocabulary
            rows.append({"task": task, "input": text, "prediction": out_vocab.decode(
                row.tolist())})
    return rows


def _infer_splits(model, params, step, registry, lengths, batch_size, mesh, split,
                  num_examples, model_dir) -> str:
    """Every eval task's predictions as JSONL; on 'test', also the leaderboard files."""
    out_dir = os.path.join(model_dir, "inference", split)
    evaluator = Evaluator(model, registry, lengths, batch_size, mesh, split, num_examples)
    labelled = {}
    for task in evaluator.tasks:
        texts = evaluator.decode(params, task)
        rows = [{"step": int(step), "task": task.name, "input": text, "prediction": pred}
                for text, pred in zip(evaluator.inputs(task), texts, strict=True)]
        _write(os.path.join(out_dir, f"{task.name}.jsonl"), rows)
        labelled[task.name] = list(zip(evaluator.sets[task.name].examples,
                                       evaluator.predictions(params, task, texts), strict=True))
    if split == "test" and jax.process_index() == 0:
        if any(name.startswith("glue_") for name in labelled) and "glue_wnli" not in labelled:
            labelled["glue_wnli"] = _wnli_majority(lengths)
        write_submission(labelled, os.path.join(out_dir, "submission"))
    return out_dir


def _wnli_majority(lengths: Mapping[str, int]) -> list[tuple[dict, int]]:
    """WNLI test examples, all labelled 0 (not_entailment), the majority class.

    T5 (and glue_mtl) does not train on WNLI; the GLUE server still wants WNLI.tsv,
    and the majority class is what most submissions, BERT's included, send.
    """
    ds = data.task_dataset("glue_wnli", 0, "test", lengths, False, None)
    return [(example, 0) for example in ds.as_numpy_iterator()]


def _write(path: str, rows: list[dict]) -> None:
    """The rows as JSONL (by process 0 alone; every process holds them all)."""
    if jax.process_index() == 0:
        write_jsonl(path, rows)
