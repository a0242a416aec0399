"""T5's text-to-text formats for GLUE and SuperGLUE (Raffel et al. 2020, appendix D).

Every example becomes `inputs` = "<benchmark> <key1>: <text1> <key2>: <text2> ..."
(the features in T5's order: sorted by name unless T5 fixes an order) and
`targets` = the label as a word ("<unk>" for unlabeled test examples). The
TFDS `idx` (and `label`) pass through for grouping metrics and submissions.
"""

from __future__ import annotations

from collections.abc import Sequence

import seqio
import tensorflow as tf

UNKNOWN_LABEL = "<unk>"
# Index features carried through for metrics and submission files.
MULTIRC_IDS = ("paragraph", "question", "answer")
RECORD_IDS = ("passage", "query")


def _label_word(label: tf.Tensor, label_names: Sequence[str]) -> tf.Tensor:
    return tf.cond(tf.equal(label, -1), lambda: tf.constant(UNKNOWN_LABEL),
                   lambda: tf.gather(tf.constant(list(label_names)), label))


def _join(parts: Sequence) -> tf.Tensor:
    return tf.strings.join(list(parts), separator=" ")


def glue_text(benchmark: str, label_names: Sequence[str],
              feature_names: Sequence[str] | None = None):
    """Classification format: "<benchmark> k1: v1 k2: v2 ..." -> label word."""

    @seqio.map_over_dataset
    def fn(x):
        keys = feature_names or sorted(set(x) - {"idx", "label"})
        inputs = _join([benchmark] + [part for k in keys for part in (f"{k}:", x[k])])
        out = {"targets": _label_word(x["label"], label_names), "label": x["label"]}
        if benchmark == "multirc":  # T5 strips MultiRC's HTML markup
            inputs = tf.strings.regex_replace(inputs, "<br>", " ")
            inputs = tf.strings.regex_replace(inputs, "<(/)?b>", "")
            out.update({f"idx_{k}": x["idx"][k] for k in MULTIRC_IDS})
        else:
            out["idx"] = x["idx"]
        return {**out, "inputs": inputs}

    return fn


@seqio.map_over_dataset
def stsb_text(x):
    """STS-B: the similarity rounded to the nearest 0.2, as text with one decimal."""
    score = tf.strings.as_string(tf.round(x["label"] * 5) / 5, precision=1)
    return {"inputs": _join(["stsb sentence1:", x["sentence1"], "sentence2:", x["sentence2"]]),
            "targets": score, "label": x["label"], "idx": x["idx"]}


def _mark_words(words: tf.Tensor, start, count, mark: str) -> tf.Tensor:
    """Insert `mark` before words[start] and after words[start + count - 1]."""
    end = start + count
    return tf.concat([words[:start], [mark], words[start:end], [mark], words[end:]], 0)


def _num_words(text: tf.Tensor) -> tf.Tensor:
    return tf.size(tf.strings.split(text, " "))


@seqio.map_over_dataset
def wsc_text(x):
    """WSC classification: "wsc text: ... * noun * ... # pronoun # ..." -> True/False."""
    words = tf.strings.split(x["text"], " ")
    words = _mark_words(words, x["span1_index"], _num_words(x["span1_text"]), "*")
    # The two marks added before span 2 shift its index.
    span2 = x["span2_index"] + 2 * tf.cast(x["span1_index"] < x["span2_index"], tf.int32)
    words = _mark_words(words, span2, _num_words(x["span2_text"]), "#")
    return {"inputs": _join(["wsc text:", tf.strings.reduce_join(words, separator=" ")]),
            "targets": _label_word(x["label"], ("False", "True")),
            "label": x["label"], "idx": x["idx"]}


def wsc_simple_text(correct_referent_only: bool):
    """T5's simple WSC: "wsc: ... *pronoun* ..." -> the noun the pronoun may refer to.

    Training keeps only the examples whose noun is the referent
    (`correct_referent_only`); evaluation keeps all and checks whether the
    prediction names the candidate noun (`postprocessors.wsc_simple`).
    """

    def to_text(x):
        words = tf.strings.split(x["text"], " ")
        i = x["span2_index"]
        pronoun = tf.strings.join(["*", x["span2_text"], "*"])
        words = tf.concat([words[:i], [pronoun], words[i + 1:]], 0)
        return {"inputs": _join(["wsc:", tf.strings.reduce_join(words, separator=" ")]),
                "targets": x["span1_text"], "label": x["label"], "idx": x["idx"]}

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        if correct_referent_only:
            ds = ds.filter(lambda x: tf.equal(x["label"], 1))
        return ds.map(to_text, num_parallel_calls=tf.data.AUTOTUNE)

    return fn


@seqio.map_over_dataset
def dpr_simple_text(x):
    """T5's simple DPR, in the simple WSC format: "wsc: ... *pronoun* ..." -> the referent.

    The pronoun to resolve is its first occurrence (the data's convention); as T5, the first
    one after a space and before a space, period or comma is marked, and a sentence with
    none stays unmarked.
    """
    first = tf.strings.join([" (", x["pronoun"], ")([ .,])"])
    marked = tf.strings.regex_replace(x["sentence"], first, r" *\1*\2", replace_global=False)
    return {"inputs": _join(["wsc:", marked]), "targets": tf.gather(x["candidates"], x["label"])}


def record_text(ds: tf.data.Dataset) -> tf.data.Dataset:
    """ReCoRD: "record query: ... entities: a, b passage: ..." -> one example per answer.

    Every copy carries all `answers` and the (passage, query) ids, so the metric
    counts each query once with the best answer (as T5 does).
    """

    def expand(x):
        answers = x["answers"]
        copies = tf.maximum(tf.size(answers), 1)
        targets = tf.cond(tf.size(answers) > 0, lambda: answers,
                          lambda: tf.constant([UNKNOWN_LABEL]))
        passage = tf.strings.regex_replace(x["passage"], r"(\.|\?|\!|\"|\')\n@highlight\n",
                                           r"\1 ")
        passage = tf.strings.regex_replace(passage, r"\n@highlight\n", ". ")
        inputs = _join(["record query:", x["query"], "entities:",
                        tf.strings.reduce_join(x["entities"], separator=", "),
                        "passage:", passage])
        repeat = lambda t: tf.fill([copies], t)  # noqa: E731
        ids = {f"idx_{k}": repeat(x["idx"][k]) for k in RECORD_IDS}
        return tf.data.Dataset.from_tensor_slices(
            {"inputs": repeat(inputs), "targets": targets,
             "answers": tf.tile(answers[None], [copies, 1]), **ids})

    return ds.flat_map(expand)
