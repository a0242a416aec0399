"""A GLUE MTL run end to end on TFDS mock data: train, evaluate, leaderboard files."""

import csv
import json
import warnings
from unittest import mock

import pytest
import tensorflow_datasets as tfds

from hyperprompt import eval as eval_lib
from hyperprompt import train as train_lib
from hyperprompt.infer import infer
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.tasks import glue

LENGTHS = {"inputs": 48, "targets": 6}
CONFIG = T5Config(vocab_size=32128, emb_dim=16, num_heads=2, num_encoder_layers=1,
                  num_decoder_layers=1, head_dim=8, mlp_dim=32)
EXAMPLES = 8
# MNLI is scored by its matched and mismatched tasks; AX has no labels (test only).
EVAL_TASKS = {"glue_cola", "glue_sst2", "glue_mrpc", "glue_qqp", "glue_stsb",
              "glue_mnli_matched", "glue_mnli_mismatched", "glue_qnli", "glue_rte"}


@pytest.fixture(scope="module")
def glue_run(tmp_path_factory):
    """(model, MODEL_DIR, evaluator, params, results) of 2 steps of glue_mtl; the evaluator
    is the one training built (captured), so its jitted decoder compiles once."""
    import gin

    from tests.conftest import T5_VOCAB, _fixture_path

    with gin.unlock_config():
        gin.bind_parameter("hyperprompt.tasks.vocabulary.sentencepiece_model_path.path",
                           _fixture_path(T5_VOCAB))
    model_dir = tmp_path_factory.mktemp("glue")
    model = EncoderDecoderModel(Transformer(CONFIG))
    built, evaluator_cls = [], eval_lib.Evaluator
    capture = lambda *args, **kwargs: built.append(evaluator_cls(*args, **kwargs)) or \
        built[-1]  # noqa: E731
    with tfds.testing.mock_data(num_examples=EXAMPLES), \
            mock.patch.object(train_lib.eval_lib, "Evaluator", capture):
        results = train_lib.train(
            model=model, model_dir=str(model_dir), train_steps=2, batch_size=8,
            mixture_or_task_name="glue_mtl", task_feature_lengths=LENGTHS, eval_period=2,
            eval_examples=EXAMPLES, checkpoint_period=2, async_checkpointing=False)
    with tfds.testing.mock_data(num_examples=EXAMPLES), eval_lib.restored_run(
            model, str(model_dir), LENGTHS, 8) as (_, _, _, params):
        yield model, model_dir, built[0], params, results
    gin.clear_config()


def test_results_have_each_tasks_leaderboard_metrics(glue_run):
    results = glue_run[-1]
    assert set(results) == EVAL_TASKS
    assert set(results["glue_cola"]) == {"mcc"}
    assert set(results["glue_mrpc"]) == set(results["glue_qqp"]) == {"f1", "accuracy"}
    assert set(results["glue_stsb"]) == {"pearson", "spearman"}
    assert (eval_lib.summary(results)[0][0], len(eval_lib.summary(results))) == (
        "GLUE score (8/9 tasks)", 1)


def hand_set_texts(gold: list[str], classes: list[str]) -> tuple[list[str], int, int]:
    """(prediction texts, how many right, how many invalid) for gold label words: by
    example index, the gold word, another class's word, a word of no class, the gold word
    with spaces around it, repeated."""
    texts = []
    for i, label in enumerate(gold):
        other = classes[(classes.index(label) + 1) % len(classes)]
        texts.append((label, other, "maybe", f" {label} ")[i % 4])
    right = sum(i % 4 in (0, 3) for i in range(len(gold)))
    return texts, right, sum(i % 4 == 2 for i in range(len(gold)))


def test_accuracy_and_invalid_counts_of_hand_set_predictions(glue_run):
    """The evaluator scores hand-set prediction texts (decoding patched out) against its
    own examples' labels: accuracy = right / examples, invalid = the count of no-class
    words, for labels that vary within each task (so misaligned predictions score
    otherwise)."""
    _, _, evaluator, params, _ = glue_run
    texts, want = {}, {}
    for task in evaluator.tasks:
        gold = [ex["targets_pretokenized"].decode() for ex in evaluator.sets[task.name].examples]
        if task.name == "glue_stsb":  # numbers, not labels
            texts[task.name] = gold
            continue
        assert len(set(gold)) > 1, (task.name, gold)
        classes = glue.label_classes(task.name.removeprefix("glue_"))
        texts[task.name], right, invalid = hand_set_texts(gold, classes)
        want[task.name] = (100 * right / len(gold), invalid)
    with mock.patch.object(evaluator, "decode", lambda _, task: texts[task.name]), \
            mock.patch.object(evaluator, "invalid", {}):
        results = evaluator.evaluate(params)
        invalid = evaluator.invalid
    assert set(want) == EVAL_TASKS - {"glue_stsb"}
    for task, (accuracy, count) in want.items():
        assert invalid[task] == count, task
        if "accuracy" in results[task]:
            assert results[task]["accuracy"] == pytest.approx(accuracy), task


def test_unparsable_predictions_are_in_the_eval_log(glue_run):
    _, model_dir, evaluator, _, _ = glue_run
    records = [json.loads(line) for line in (model_dir / "train_log.jsonl").open()]
    (logged,) = [r for r in records if r["kind"] == "eval_invalid"]
    assert logged["step"] == 2
    assert {k: v for k, v in logged.items() if k.startswith("glue_")} == evaluator.invalid


def test_test_split_inference_writes_the_leaderboard_files(glue_run):
    model, model_dir, *_ = glue_run
    with tfds.testing.mock_data(num_examples=EXAMPLES), warnings.catch_warnings():
        warnings.simplefilter("error")  # every file the GLUE server wants is there
        out = infer(model=model, model_dir=str(model_dir), task_feature_lengths=LENGTHS,
                    batch_size=8, split="test")
    files = sorted(p.name for p in (model_dir / "inference" / "test" / "submission").iterdir())
    assert files == ["AX.tsv", "CoLA.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "MRPC.tsv", "QNLI.tsv",
                     "QQP.tsv", "RTE.tsv", "SST-2.tsv", "STS-B.tsv", "WNLI.tsv"]
    with open(f"{out}/submission/MNLI-mm.tsv") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["index", "prediction"] and len(rows) == EXAMPLES + 1
    assert {r[1] for r in rows[1:]} <= {"entailment", "neutral", "contradiction"}
    with open(f"{out}/submission/WNLI.tsv") as f:  # not trained (as T5): the majority class
        assert [r[1] for r in csv.reader(f, delimiter="\t")][1:] == ["0"] * EXAMPLES
