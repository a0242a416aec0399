"""GLUE/SuperGLUE multi-task mixtures and their sampling rates (Raffel et al. 2020, 3.5.2).

Each benchmark mixture comes in four rate schemes:
  <name>          examples-proportional: r_m ∝ min(e_m, K), K = 2^19 (T5's default)
  <name>_temp2    temperature-scaled:    r_m ∝ min(e_m, K)^(1/T), T = 2
  <name>_temp10   the same with T = 10
  <name>_equal    equal:                 r_m ∝ 1
where e_m is task m's number of training examples. The mixture's ordered task
list is the task-id registry.
"""

from __future__ import annotations

from collections.abc import Mapping

import seqio

from hyperprompt.tasks import dpr, glue, super_glue  # noqa: F401  (registers the tasks)

EXAMPLES_CAP = 2**19
# Training examples per task: the TFDS catalog's train split sizes; ReCoRD counts
# one example per answer (as its text format yields them) and simple WSC only
# its correct referents (T5's counts, t5/data/glue_utils.py). DPR: 1,322 sentences
# (TFDS definite_pronoun_resolution; T5's rate for dpr_v001_simple).
TRAIN_EXAMPLES = {
    "glue_cola": 8_551, "glue_sst2": 67_349, "glue_mrpc": 3_668, "glue_qqp": 363_846,
    "glue_stsb": 5_749, "glue_mnli": 392_702, "glue_qnli": 104_743, "glue_rte": 2_490,
    "super_glue_boolq": 9_427, "super_glue_cb": 250, "super_glue_copa": 400,
    "super_glue_multirc": 27_243, "super_glue_record": 138_854, "super_glue_rte": 2_490,
    "super_glue_wic": 5_428, "super_glue_wsc_simple_train": 259, dpr.TASK: 1_322,
}
GLUE_TASKS = [name for name in TRAIN_EXAMPLES if name.startswith("glue_")]
# T5's SuperGLUE mixture (super_glue_v102_proportional) also trains on DPR (tasks/dpr.py).
SUPER_GLUE_TASKS = [name for name in TRAIN_EXAMPLES if name.startswith("super_glue_")
                    ] + [dpr.TASK]
MIXTURES = {
    "glue_mtl": GLUE_TASKS,
    "super_glue_mtl": SUPER_GLUE_TASKS,
    "glue_super_glue_mtl": GLUE_TASKS + SUPER_GLUE_TASKS,
    # ATTEMPT's source group (1) on which G is pretrained (Asai et al. 2022, Appendix C.3)
    "attempt_sources_glue": ["glue_mnli", "glue_qnli", "glue_qqp", "glue_sst2"],
}
# Suffix -> temperature (None: equal rates).
RATE_SCHEMES = {"": 1.0, "_temp2": 2.0, "_temp10": 10.0, "_equal": None}


def mixing_rates(examples: Mapping[str, int], temperature: float | None = 1.0,
                 cap: int = EXAMPLES_CAP) -> dict[str, float]:
    """Normalised rates: min(e, cap)^(1/temperature), or equal when temperature is None."""
    raw = {name: 1.0 if temperature is None else min(n, cap) ** (1.0 / temperature)
           for name, n in examples.items()}
    total = sum(raw.values())
    return {name: r / total for name, r in raw.items()}


def register() -> None:
    for mixture, tasks in MIXTURES.items():
        for suffix, temperature in RATE_SCHEMES.items():
            if mixture + suffix in seqio.MixtureRegistry.names():
                continue
            rates = mixing_rates({t: TRAIN_EXAMPLES[t] for t in tasks}, temperature)
            seqio.MixtureRegistry.add(mixture + suffix, list(rates.items()))


register()
