"""GLUE/SuperGLUE tasks through their real seqio pipelines on TFDS mock data.

Hand-made examples go in through `tfds.testing.mock_data(as_dataset_fn=...)`;
the expected strings are T5's text formats written out by hand.
"""

import re

import numpy as np
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

import hyperprompt.tasks  # noqa: F401  (registers the tasks)

LENGTHS = {"inputs": 256, "targets": 32}
MULTIRC_PARAGRAPH = "<b>Sent 1: </b>Mary went home.<br><b>Sent 2: </b>She slept."
WSC_TEXT = "Mark told Pete many lies about himself , which Pete included in his book ."
WSC = {"text": WSC_TEXT, "span1_text": "Pete", "span1_index": 2, "span2_text": "his",
       "span2_index": 12, "idx": 5}

# TFDS dataset -> raw example; label -1 marks an unlabeled test example.
RAW = {
    "glue/cola": {"sentence": "Bill whistled past the house.", "label": 1, "idx": 0},
    "glue/sst2": {"sentence": "a gripping movie", "label": 1, "idx": 1},
    "glue/mrpc": {"sentence1": "He left.", "sentence2": "He went away.", "label": 1, "idx": 2},
    "glue/qqp": {"question1": "Why?", "question2": "How?", "label": 0, "idx": 3},
    "glue/stsb": {"sentence1": "A cat.", "sentence2": "A dog.", "label": 3.72, "idx": 4},
    "glue/mnli": {"premise": "P.", "hypothesis": "H.", "label": 2, "idx": 5},
    "glue/mnli_matched": {"premise": "P.", "hypothesis": "H.", "label": 0, "idx": 6},
    "glue/mnli_mismatched": {"premise": "P.", "hypothesis": "H.", "label": 1, "idx": 7},
    "glue/ax": {"premise": "P.", "hypothesis": "H.", "label": -1, "idx": 8},
    "glue/qnli": {"question": "Who?", "sentence": "Ann did.", "label": 1, "idx": 9},
    "glue/rte": {"sentence1": "S1.", "sentence2": "S2.", "label": 0, "idx": 10},
    "glue/wnli": {"sentence1": "S1.", "sentence2": "S2.", "label": 1, "idx": 11},
    "super_glue/boolq": {"passage": "P.", "question": "is it", "label": 1, "idx": 0},
    "super_glue/cb": {"premise": "P.", "hypothesis": "H.", "label": 1, "idx": 1},
    "super_glue/copa": {"premise": "It rained.", "choice1": "Wet.", "choice2": "Dry.",
                        "question": "effect", "label": 0, "idx": 2},
    "super_glue/multirc": {"paragraph": MULTIRC_PARAGRAPH, "question": "Who slept?",
                           "answer": "Mary", "label": 1,
                           "idx": {"paragraph": 3, "question": 4, "answer": 5}},
    "super_glue/record": {"passage": "The cat sat.\n@highlight\nCats sit", "query":
                          "@placeholder sat.", "entities": ["The cat", "Cats"],
                          "answers": ["The cat", "cat"], "idx": {"passage": 6, "query": 7}},
    "super_glue/rte": {"premise": "P.", "hypothesis": "H.", "label": 1, "idx": 8},
    "super_glue/wic": {"word": "bank", "sentence1": "A river bank.", "sentence2": "A bank loan.",
                       "start1": 8, "end1": 12, "start2": 2, "end2": 6, "label": 0, "idx": 9},
    "super_glue/wsc.fixed": {**WSC, "label": 1},
    "super_glue/axb": {"sentence1": "S1.", "sentence2": "S2.", "label": -1, "idx": 10},
    "super_glue/axg": {"premise": "P.", "hypothesis": "H.", "label": -1, "idx": 11},
    # T5's own example of its simple DPR format (t5.data.preprocessors).
    "definite_pronoun_resolution": {"sentence": "Bob asked Tom if he can lend some money.",
                                    "pronoun": "he", "candidates": ["Bob", "Tom"], "label": 1},
}

# (task, split) -> [(inputs, targets)] in T5's format.
EXPECTED = {
    ("glue_cola", "train"): [("cola sentence: Bill whistled past the house.", "acceptable")],
    ("glue_sst2", "validation"): [("sst2 sentence: a gripping movie", "positive")],
    ("glue_mrpc", "train"): [("mrpc sentence1: He left. sentence2: He went away.",
                              "equivalent")],
    ("glue_qqp", "train"): [("qqp question1: Why? question2: How?", "not_duplicate")],
    # 3.72 * 5 = 18.6 -> 19 -> 3.8
    ("glue_stsb", "train"): [("stsb sentence1: A cat. sentence2: A dog.", "3.8")],
    ("glue_mnli", "train"): [("mnli hypothesis: H. premise: P.", "contradiction")],
    ("glue_mnli_matched", "validation"): [("mnli hypothesis: H. premise: P.", "entailment")],
    ("glue_mnli_mismatched", "validation"): [("mnli hypothesis: H. premise: P.", "neutral")],
    ("glue_ax", "test"): [("mnli hypothesis: H. premise: P.", "<unk>")],
    ("glue_qnli", "train"): [("qnli question: Who? sentence: Ann did.", "not_entailment")],
    ("glue_rte", "train"): [("rte sentence1: S1. sentence2: S2.", "entailment")],
    ("glue_wnli", "train"): [("wnli sentence1: S1. sentence2: S2.", "entailment")],
    ("super_glue_boolq", "train"): [("boolq passage: P. question: is it", "True")],
    ("super_glue_cb", "train"): [("cb hypothesis: H. premise: P.", "contradiction")],
    ("super_glue_copa", "train"): [
        ("copa choice1: Wet. choice2: Dry. premise: It rained. question: effect", "choice1")],
    ("super_glue_multirc", "train"): [
        ("multirc question: Who slept? answer: Mary paragraph: Sent 1: Mary went home. "
         "Sent 2: She slept.", "True")],
    ("super_glue_record", "train"): [
        ("record query: @placeholder sat. entities: The cat, Cats passage: The cat sat. "
         "Cats sit", answer) for answer in ("The cat", "cat")],
    ("super_glue_rte", "train"): [("rte hypothesis: H. premise: P.", "not_entailment")],
    ("super_glue_wic", "train"): [
        ("wic sentence1: A river bank. sentence2: A bank loan. word: bank", "False")],
    ("super_glue_wsc", "train"): [
        ("wsc text: Mark told * Pete * many lies about himself , which Pete included in "
         "# his # book .", "True")],
    ("super_glue_wsc_simple_train", "train"): [
        ("wsc: Mark told Pete many lies about himself , which Pete included in *his* book .",
         "Pete")],
    ("super_glue_wsc_simple", "validation"): [
        ("wsc: Mark told Pete many lies about himself , which Pete included in *his* book .",
         "Pete")],
    ("dpr_simple_train", "train"): [("wsc: Bob asked Tom if *he* can lend some money.", "Tom")],
    ("super_glue_axb", "test"): [("rte hypothesis: S2. premise: S1.", "<unk>")],
    ("super_glue_axg", "test"): [("rte hypothesis: H. premise: P.", "<unk>")],
}

DTYPES = {"label": np.int64, "idx": np.int32, "span1_index": np.int32,
          "span2_index": np.int32, "start1": np.int32, "end1": np.int32, "start2": np.int32,
          "end2": np.int32}


def _tensors(example: dict, stsb: bool) -> dict:
    out = {}
    for key, value in example.items():
        if isinstance(value, dict):
            out[key] = {k: np.int32(v) for k, v in value.items()}
        elif key == "label" and stsb:
            out[key] = np.float32(value)
        elif isinstance(value, list):
            out[key] = tf.constant(value, tf.string)
        elif key in DTYPES:
            out[key] = DTYPES[key](value)
        else:
            out[key] = value
    return out


def _as_dataset(examples: dict):
    def as_dataset_fn(builder, split, **kwargs):
        config = builder.builder_config
        name = f"{builder.name}/{config.name}" if config else builder.name
        return tf.data.Dataset.from_tensors(_tensors(examples[name], "stsb" in name))
    return as_dataset_fn


def _pipeline(task_name: str, split: str, examples: dict = RAW) -> list[dict]:
    with tfds.testing.mock_data(as_dataset_fn=_as_dataset(examples)):
        task = seqio.get_mixture_or_task(task_name)
        ds = task.get_dataset(LENGTHS, split=split, shuffle=False, try_in_mem_cache=False)
        return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("task_name,split", sorted(EXPECTED))
def test_t5_text_format(task_name, split, t5_vocab):
    rows = _pipeline(task_name, split)
    got = [(r["inputs_pretokenized"].decode(), r["targets_pretokenized"].decode())
           for r in rows]
    assert got == EXPECTED[task_name, split]
    for row, (inputs, targets) in zip(rows, got, strict=True):  # tokens: the vocabulary's + EOS
        assert row["inputs"].tolist() == t5_vocab.encode(inputs) + [t5_vocab.eos_id]
        assert row["targets"].tolist() == t5_vocab.encode(targets) + [t5_vocab.eos_id]


def test_simple_wsc_trains_on_correct_referents_only(t5_vocab):
    wrong = {**RAW, "super_glue/wsc.fixed": {**WSC, "label": 0}}
    assert _pipeline("super_glue_wsc_simple_train", "train", wrong) == []
    assert len(_pipeline("super_glue_wsc_simple", "validation", wrong)) == 1


@pytest.mark.parametrize("sentence,marked", [
    # The first occurrence after a space and before a space, period or comma.
    ("Ann told Sue that she saw her, then she left.", "Ann told Sue that *she* saw her,"),
    ("Ann thanked Sue because Tom praised her.", "because Tom praised *her*."),
    ("Ann met Sue; her car was there.", "Ann met Sue; *her* car"),
    # None there (T5 leaves the sentence as it is).
    ("Ann thanked Sue, for her?", "Ann thanked Sue, for her?"),
])
def test_simple_dpr_marks_the_first_pronoun(sentence, marked, t5_vocab):
    pronoun = re.findall(r"\b(she|her)\b", sentence)[0]
    example = {"sentence": sentence, "pronoun": pronoun, "candidates": ["Ann", "Sue"],
               "label": 0}
    (row,) = _pipeline("dpr_simple_train", "train",
                       {**RAW, "definite_pronoun_resolution": example})
    assert marked in row["inputs_pretokenized"].decode()
    assert row["inputs_pretokenized"].decode().count("*") == (0 if "?" in sentence else 2)
    assert row["targets_pretokenized"] == b"Ann"


def test_ids_for_grouping_pass_through(t5_vocab):
    (multirc,) = _pipeline("super_glue_multirc", "validation")
    assert (multirc["idx_paragraph"], multirc["idx_question"], multirc["idx_answer"]) == (3, 4, 5)
    record = _pipeline("super_glue_record", "validation")
    assert [(r["idx_passage"], r["idx_query"]) for r in record] == [(6, 7), (6, 7)]
    assert [a.decode() for a in record[0]["answers"]] == ["The cat", "cat"]
    test = {**RAW, "super_glue/record": {**RAW["super_glue/record"], "answers": []}}
    (unlabeled,) = _pipeline("super_glue_record", "test", test)
    assert unlabeled["targets_pretokenized"] == b"<unk>"


BENCHMARK_TASKS = sorted(name for name in seqio.TaskRegistry.names()
                         if name.startswith(("glue_", "super_glue_", "dpr_")))


def test_every_task_split_runs_on_random_mock_data(t5_vocab):
    """TFDS's random mock examples (its real feature specs) through every task (one split
    each: splits differ only in which TFDS split the source reads)."""
    with tfds.testing.mock_data(num_examples=2):
        for name in BENCHMARK_TASKS:
            task = seqio.get_mixture_or_task(name)
            split = "validation" if "validation" in task.splits else task.splits[0]
            rows = list(task.get_dataset(LENGTHS, split=split, shuffle=False,
                                         try_in_mem_cache=False).as_numpy_iterator())
            if name == "super_glue_wsc_simple_train":  # keeps correct referents only
                continue
            assert rows, f"{name}/{split} yielded nothing"
            for row in rows:
                text = row["inputs_pretokenized"].decode()
                assert row["inputs"].tolist() == t5_vocab.encode(text)[:255] + [1]
