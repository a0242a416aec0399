"""SuperGLUE as seqio tasks `super_glue_<name>` in T5's text format (TFDS `super_glue/*`).

WSC trains in T5's simple format (`super_glue_wsc_simple_train`: "wsc: ... *he* ..."
-> the referent noun, correct referents only) and is evaluated by
`super_glue_wsc_simple`; the classification format is `super_glue_wsc`. The
diagnostics AX-b and AX-g (test only) are cast as RTE and use RTE's task id.
"""

from __future__ import annotations

import functools

import seqio
import tensorflow_datasets as tfds

from hyperprompt.tasks import metrics, postprocessors, text_formats
from hyperprompt.tasks.tfds_tasks import STANDARD_SPLITS, add_tfds_task

TFDS_VERSION = "1.0.2"
EVALUATED_BY = {
    "super_glue_rte": ("super_glue_rte", "super_glue_axb", "super_glue_axg"),
    "super_glue_wsc_simple_train": ("super_glue_wsc_simple",),
}
# T5's feature orders where they are not alphabetical.
FEATURE_ORDER = {"multirc": ("question", "answer", "paragraph"),
                 "wic": ("sentence1", "sentence2", "word")}
METRICS = {
    "boolq": [metrics.accuracy],
    "cb": [metrics.macro_f1_and_accuracy(num_classes=3)],
    "copa": [metrics.accuracy],
    "rte": [metrics.accuracy],
    "axb": [],
    "axg": [],
}
# AX-b's sentence1/sentence2 read as RTE's premise/hypothesis.
AXB_AS_RTE = functools.partial(seqio.preprocessors.rekey, key_map={
    "premise": "sentence1", "hypothesis": "sentence2", "label": "label", "idx": "idx"})


def task_name(config: str) -> str:
    return f"super_glue_{config.replace('.fixed', '')}"


def label_classes(config: str) -> list[str]:
    return list(tfds.text.super_glue.SuperGlue.builder_configs[config].label_classes)


def _tfds(config: str) -> str:
    return f"super_glue/{config}:{TFDS_VERSION}"


def register() -> None:
    for config, metric_fns in METRICS.items():
        benchmark = "rte" if config in ("axb", "axg") else config
        text = [text_formats.glue_text(benchmark, label_classes(config))]
        if config == "axb":
            text.insert(0, AXB_AS_RTE)
        add_tfds_task(task_name(config), _tfds(config), text,
                      postprocessors.label_id(label_classes(config)), metric_fns,
                      ["test"] if benchmark != config else STANDARD_SPLITS)
    multirc = text_formats.glue_text("multirc", label_classes("multirc"), FEATURE_ORDER["multirc"])
    add_tfds_task("super_glue_multirc", _tfds("multirc"), [multirc], postprocessors.multirc,
                  [metrics.multirc_f1a_and_em])
    wic = text_formats.glue_text("wic", label_classes("wic"), FEATURE_ORDER["wic"])
    add_tfds_task("super_glue_wic", _tfds("wic"), [wic],
                  postprocessors.label_id(label_classes("wic")), [metrics.accuracy])
    add_tfds_task("super_glue_record", _tfds("record"), [text_formats.record_text],
                  postprocessors.record, [metrics.record_em_and_f1])
    add_tfds_task("super_glue_wsc", _tfds("wsc.fixed"), [text_formats.wsc_text],
                  postprocessors.label_id(("False", "True")), [metrics.accuracy])
    add_tfds_task("super_glue_wsc_simple_train", _tfds("wsc.fixed"),
                  [text_formats.wsc_simple_text(correct_referent_only=True)], None, [],
                  ["train"])
    add_tfds_task("super_glue_wsc_simple", _tfds("wsc.fixed"),
                  [text_formats.wsc_simple_text(correct_referent_only=False)],
                  postprocessors.wsc_simple, [metrics.accuracy], ["validation", "test"])


register()
