"""Ranges of the numeric and boolean macros, checked before any command reads data or writes
a file.

A macro that the gin files leave unbound is not checked; one bound to a configurable
(e.g. LEARNING_RATE = @optax.warmup_cosine_decay_schedule()) is the configurable's business.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import gin

from hyperprompt.errors import UsageError


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(
        value)


def _positive_int(value) -> bool:
    return _integer(value) and value >= 1


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _bool(value) -> bool:
    return isinstance(value, bool)


def _lengths(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _positive_int(v)
                                           for k, v in value.items())


# macro -> (check, what a valid value is, an example)
RULES: dict[str, tuple[Callable[[object], bool], str, str]] = {
    "TRAIN_STEPS": (_positive_int, "an integer >= 1", "2000"),
    "BATCH_SIZE": (_positive_int, "an integer >= 1", "64"),
    "EVAL_PERIOD": (_positive_int, "an integer >= 1", "500"),
    "CHECKPOINT_PERIOD": (_positive_int, "an integer >= 1", "500"),
    "KEEP_CHECKPOINTS": (_optional(_positive_int), "an integer >= 1 or None (keep all)", "3"),
    "EVAL_EXAMPLES": (_optional(_positive_int), "an integer >= 1 or None (all)", "256"),
    "INFER_EXAMPLES": (_optional(_positive_int), "an integer >= 1 or None (all)", "256"),
    "MODEL_PARALLEL": (_positive_int, "an integer >= 1", "1"),
    "NUM_TASKS": (_positive_int, "an integer >= 1", "4"),
    "SEED": (lambda v: _integer(v) and v >= 0, "an integer >= 0", "0"),
    "LEARNING_RATE": (lambda v: _number(v) and v >= 0, "a number >= 0 (0 trains nothing)", "1e-3"),
    "PROMPT_LEARNING_RATE": (_optional(lambda v: _number(v) and v > 0),
                             "a number > 0 or None (the run's optimizer)", "0.3"),
    "DROPOUT_RATE": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)", "0.1"),
    "Z_LOSS": (lambda v: _number(v) and v >= 0, "a number >= 0", "1e-4"),
    "LOSS_NORMALIZING_FACTOR": (
        lambda v: v is None or v == "NUM_REAL_TARGET_TOKENS" or (_number(v) and v > 0),
        "a number > 0, None or 'NUM_REAL_TARGET_TOKENS'", "'NUM_REAL_TARGET_TOKENS'"),
    "TASK_FEATURE_LENGTHS": (_lengths, "a dict of integer lengths >= 1",
                             "\"{'inputs': 64, 'targets': 16}\""),
    "PROMPT_LENGTH": (_positive_int, "an integer >= 1", "100"),
    "HYPERPROMPT_LENGTH": (_positive_int, "an integer >= 1", "16"),
    "HYPERPROMPT_BOTTLENECK": (_positive_int, "an integer >= 1", "16"),
    "ADAPTER_REDUCTION": (_positive_int, "an integer >= 1 dividing d_model", "32"),
    "HYPERGRID_ROWS": (_positive_int, "an integer >= 1", "32"),
    "HYPERGRID_COLS": (_positive_int, "an integer >= 1", "32"),
    "ATTEMPT_BOTTLENECK": (_positive_int, "an integer >= 1", "100"),
    "ATTEMPT_ATTENTION_LEARNING_RATE": (_optional(lambda v: _number(v) and v > 0),
                                        "a number > 0 or None (the run's optimizer)", "0.3"),
    **{name: (_bool, "True or False", "True") for name in (
        "PACK", "SCAN_LAYERS", "RESTORE_OPTIMIZER_STATE", "FREEZE_BACKBONE", "ADAPTER_SHARED",
        "ATTEMPT_SHARED_ATTENTION", "ATTEMPT_TARGET_PROMPT", "ATTEMPT_TRAIN_LAYER_NORM")},
}


def _bound(name: str):
    """(True, value) of a bound macro, references to other macros followed; (False, None)
    when it is unbound or bound to a configurable."""
    try:
        value = gin.query_parameter(f"{name}/macro.value")
    except ValueError:
        return False, None
    while isinstance(value, gin.config.ConfigurableReference):
        if value.selector != "gin.macro" and not value.selector.endswith(".macro"):
            return False, None
        value = value.scoped_configurable_fn()
    return True, value


def check() -> None:
    """UsageError naming the first macro whose value is out of its range."""
    for name, (valid, expected, example) in RULES.items():
        bound, value = _bound(name)
        if bound and not valid(value):
            raise UsageError(f"{name}={value!r} is out of range: it must be {expected}; pass "
                             f"e.g. --gin.{name}={example}.")
