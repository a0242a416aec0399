"""Optimizers (optax): Adafactor as T5 and AdamW, with frozen groups and per-group LRs.

Groups are chosen by regular expressions on '/'-joined parameter paths, e.g.
`encoder/layers_\\d+/attention/.*`; the first matching group wins, unmatched
parameters use the default learning rate, and frozen ones get no update.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jax
import optax

FROZEN = "frozen"
DEFAULT = "default"


def param_path(path) -> str:
    """A tree path as 'encoder/layers_0/attention/query/kernel'."""
    return "/".join(str(getattr(k, "key", k)) for k in path)


def flat_paths(tree) -> dict[str, object]:
    """{'/'-joined path: leaf} of a parameter tree."""
    return {param_path(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


# Every parameter outside the task conditioner (the T5 backbone).
BACKBONE = r"(?!conditioner/).*"


def backbone_patterns(freeze: bool = True) -> tuple[str, ...]:
    """`frozen` patterns for methods that tune only their own parameters."""
    return (BACKBONE,) if freeze else ()


def param_labels(params, frozen: Sequence[str] = (),
                 group_learning_rates: Mapping[str, float] | None = None):
    """Tree of labels: FROZEN, the matching group's regex, or DEFAULT."""
    frozen_res = [re.compile(p) for p in frozen]
    group_res = [(re.compile(p), p) for p in (group_learning_rates or {})]

    def label(path, _) -> str:
        key = param_path(path)
        if any(r.fullmatch(key) for r in frozen_res):
            return FROZEN
        return next((p for r, p in group_res if r.fullmatch(key)), DEFAULT)

    return jax.tree_util.tree_map_with_path(label, params)


def base_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0
                   ) -> optax.GradientTransformation:
    if name == "adafactor":
        # T5/t5x defaults: factored second moments, decay 0.8, update clipping 1.0,
        # steps relative to the parameter scale.
        return optax.adafactor(learning_rate=learning_rate, decay_rate=0.8,
                               multiply_by_parameter_scale=True, clipping_threshold=1.0)
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer {name!r} is unknown; use 'adafactor' or 'adamw'.")


def make_optimizer(
    name: str = "adafactor",
    learning_rate: float = 1e-3,
    frozen: Sequence[str] = (),
    group_learning_rates: Mapping[str, float] | None = None,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An optax transformation; `frozen` and `group_learning_rates` keys are path regexes."""
    group_learning_rates = dict(group_learning_rates or {})
    transforms = {FROZEN: optax.set_to_zero(),
                  DEFAULT: base_optimizer(name, learning_rate, weight_decay)}
    transforms.update({p: base_optimizer(name, lr, weight_decay)
                       for p, lr in group_learning_rates.items()})
    return optax.multi_transform(
        transforms, lambda params: param_labels(params, frozen, group_learning_rates))
