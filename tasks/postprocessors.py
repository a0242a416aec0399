"""Decoded text -> labels for GLUE/SuperGLUE metrics (seqio `postprocess_fn`s).

A prediction that names no label becomes `INVALID`; metrics count it as wrong
and the evaluator reports how many there were. Targets are postprocessed with
their example (`is_target=True`), predictions too (WSC needs the candidate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INVALID = -1
# Words the simple-WSC check ignores (T5's list of determiners).
DETERMINERS = frozenset(
    "a an few her his each every many much my our some that the their these this those "
    "which whose your".split())


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def label_id(label_classes: Sequence[str]):
    """Label word -> its index in `label_classes`, else INVALID."""

    def fn(output: Any, example: Mapping | None = None, is_target: bool = False) -> int:
        del example, is_target
        text = _text(output).strip()
        return label_classes.index(text) if text in label_classes else INVALID

    return fn


def stsb(output: Any, example: Mapping | None = None, is_target: bool = False) -> float:
    """STS-B: the predicted number, else INVALID (outside the 0-5 range); targets: the raw
    gold score (the leaderboard correlates against it, not the 0.2-rounded text)."""
    if is_target:
        return float(example["label"])
    try:
        return float(_text(output))
    except ValueError:
        return float(INVALID)


def multirc(output: Any, example: Mapping | None = None, is_target: bool = False) -> dict:
    """{'value': 0/1/INVALID} plus, for targets, the question it belongs to."""
    result = {"value": label_id(("False", "True"))(output)}
    if is_target:
        result["group"] = (int(example["idx_paragraph"]), int(example["idx_question"]))
    return result


def record(output: Any, example: Mapping | None = None, is_target: bool = False):
    """Predictions stay text; targets become the query's id and all its answers."""
    if not is_target:
        return _text(output)
    return {"group": (int(example["idx_passage"]), int(example["idx_query"])),
            "answers": [_text(a) for a in example["answers"]]}


def _clean(text: str) -> str:
    return " ".join(w for w in text.strip().lower().split(" ") if w not in DETERMINERS)


def wsc_simple(output: Any, example: Mapping | None = None, is_target: bool = False) -> int:
    """1 if the prediction names the example's candidate noun, 0 if another, INVALID if
    nothing; targets: the label.

    As T5: case and determiners are ignored, either word set may contain the
    other ("fuzzy bunny" vs "bunny"), and a possessive must match a possessive.
    """
    if is_target:
        return int(example["label"])
    referent, prediction = _clean(_text(example["targets_pretokenized"])), _clean(_text(output))
    if not prediction:  # names nothing: neither "is" nor "is not" the candidate (as T5)
        return INVALID
    if ("'" in prediction) != ("'" in referent):
        return 0
    predicted, candidate = set(prediction.split(" ")), set(referent.split(" "))
    return int(predicted <= candidate or candidate <= predicted)


def is_invalid(value: Any) -> bool:
    """Whether a postprocessed prediction is INVALID (a dict carries it under 'value')."""
    if isinstance(value, Mapping):
        value = value.get("value")
    return isinstance(value, (int, float)) and value == INVALID
