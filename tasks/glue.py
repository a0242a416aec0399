"""GLUE as seqio tasks `glue_<name>` in T5's text format (TFDS `glue/*`).

MNLI trains as `glue_mnli` and is evaluated by `glue_mnli_matched`,
`glue_mnli_mismatched` and the diagnostic `glue_ax` (test only), all with
MNLI's task id (`EVALUATED_BY`). WNLI is registered but, as in T5, left out
of the training mixture.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from hyperprompt.tasks import metrics, postprocessors, text_formats
from hyperprompt.tasks.tfds_tasks import STANDARD_SPLITS, add_tfds_task

TFDS_VERSION = "2.0.0"
METRICS = {
    "cola": [metrics.matthews_corr],
    "sst2": [metrics.accuracy],
    "mrpc": [metrics.f1_and_accuracy],
    "qqp": [metrics.f1_and_accuracy],
    "stsb": [metrics.pearson_spearman],
    "mnli": [],  # train split only; see mnli_matched / mnli_mismatched
    "mnli_matched": [metrics.accuracy],
    "mnli_mismatched": [metrics.accuracy],
    "qnli": [metrics.accuracy],
    "rte": [metrics.accuracy],
    "wnli": [metrics.accuracy],
    "ax": [],  # test only: diagnostic, scored by the leaderboard
}
SPLITS = {"mnli": ["train"], "mnli_matched": ["validation", "test"],
          "mnli_mismatched": ["validation", "test"], "ax": ["test"]}
# Training task -> the tasks that evaluate it (with its task id).
EVALUATED_BY = {"glue_mnli": ("glue_mnli_matched", "glue_mnli_mismatched", "glue_ax")}


def task_name(config: str) -> str:
    return f"glue_{config}"


def label_classes(config: str) -> list[str]:
    return list(tfds.text.glue.Glue.builder_configs[config].label_classes)


def register() -> None:
    for config in METRICS:
        if config == "stsb":
            text, post = text_formats.stsb_text, postprocessors.stsb
        else:
            benchmark = "mnli" if config.startswith("mnli") or config == "ax" else config
            text = text_formats.glue_text(benchmark, label_classes(config))
            post = postprocessors.label_id(label_classes(config))
        add_tfds_task(task_name(config), f"glue/{config}:{TFDS_VERSION}", [text], post,
                      METRICS[config], SPLITS.get(config, STANDARD_SPLITS))


register()
