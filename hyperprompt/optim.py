"""Optimizers (optax): Adafactor as t5x and AdamW, with parameter groups and layer stacks.

Groups are chosen by regular expressions on '/'-joined parameter paths, e.g.
`encoder/layers_\\d+/attention/.*`; the first matching group wins, a frozen
group gets no update, any other group its own optimizer settings (the run's
settings with the group's overrides), and unmatched parameters the run's.

Parameters that stack layers on an axis (the logical axis `layers`: scanned
stacks, per-layer method parameters) are optimised layer by layer, as t5x's
Adafactor treats that axis (a `FactorDim.BATCH` dimension): its factored
second moments, parameter scale and update clipping are per layer, so a
scanned stack trains exactly as the same layers unrolled.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec

from hyperprompt.adafactor import adafactor

FROZEN = "frozen"
DEFAULT = "default"
LAYERS = "layers"  # the logical axis name of stacked layers
STACKED = "/stacked"  # label suffix of parameters optimised layer by layer

# Every parameter outside the task conditioner (the T5 backbone).
BACKBONE = r"(?!conditioner/).*"
# Every parameter of the task conditioner.
CONDITIONER = r"conditioner/.*"


def param_path(path) -> str:
    """A tree path as 'encoder/layers_0/attention/query/kernel'."""
    return "/".join(str(getattr(k, "key", k)) for k in path)


def flat_paths(tree) -> dict[str, object]:
    """{'/'-joined path: leaf} of a parameter tree."""
    return {param_path(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def backbone_patterns(freeze: bool = True) -> tuple[str, ...]:
    """`frozen` patterns for methods that tune only their own parameters."""
    return (BACKBONE,) if freeze else ()


ADAFACTOR_ONLY = ("decay_rate", "multiply_by_parameter_scale", "clipping_threshold",
                  "step_offset")


@dataclasses.dataclass(frozen=True)
class Settings:
    """One optimizer's hyper-parameters. Adafactor's defaults are T5's (t5x `adafactor.py`):
    factored second moments with decay 1 - (t - step_offset)^-0.8, update clipping at RMS
    1.0, steps relative to the parameter's RMS scale (at least 1e-3), and a weight decay that
    is not multiplied by the learning rate (p <- (1 - wd) p - update). AdamW's weight decay
    is optax's (multiplied by the learning rate)."""

    name: str = "adafactor"
    learning_rate: float | optax.Schedule = 1e-3
    weight_decay: float = 0.0
    decay_rate: float = 0.8  # ADAFACTOR_ONLY from here
    multiply_by_parameter_scale: bool = True
    clipping_threshold: float | None = 1.0
    step_offset: int = 0

    def build(self) -> optax.GradientTransformation:
        if self.name == "adafactor":
            return adafactor(
                learning_rate=self.learning_rate, decay_rate=self.decay_rate,
                decay_offset=self.step_offset,
                multiply_by_parameter_scale=self.multiply_by_parameter_scale,
                clipping_threshold=self.clipping_threshold,
                weight_decay_rate=self.weight_decay or None)
        if self.name == "adamw":
            defaults = Settings()
            changed = [k for k in ADAFACTOR_ONLY if getattr(self, k) != getattr(defaults, k)]
            if changed:
                raise ValueError(f"{', '.join(changed)} are Adafactor settings but the optimizer "
                                 f"is 'adamw'; drop them or use name='adafactor'.")
            return optax.adamw(self.learning_rate, weight_decay=self.weight_decay)
        raise ValueError(f"optimizer {self.name!r} is unknown; use 'adafactor' or 'adamw'.")


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """Parameters whose path fully matches `pattern`: frozen, or trained with the run's
    `Settings` overridden by `optimizer` (e.g. {"learning_rate": 0.3})."""

    pattern: str
    frozen: bool = False
    optimizer: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def param_labels(params, groups: Sequence[ParamGroup],
                 layer_axes: Mapping[str, int] | None = None):
    """Tree of labels: FROZEN, the index of the first matching group, or DEFAULT; trained
    labels of parameters with a `layers` axis end in STACKED."""
    compiled = [(re.compile(g.pattern), g) for g in groups]
    layer_axes = layer_axes or {}

    def label(path, _) -> str:
        key = param_path(path)
        index = next((i for i, (r, _) in enumerate(compiled) if r.fullmatch(key)), None)
        if index is not None and groups[index].frozen:
            return FROZEN
        name = DEFAULT if index is None else str(index)
        return name + STACKED if key in layer_axes else name

    return jax.tree_util.tree_map_with_path(label, params)


def layer_axes(boxed_params) -> dict[str, int]:
    """{path: position of the `layers` logical axis} of every parameter that stacks layers,
    from parameters boxed with their logical axis names (`model.init` under eval_shape)."""
    specs = nn.get_partition_spec(boxed_params)
    leaves = jax.tree_util.tree_flatten_with_path(
        specs, is_leaf=lambda x: isinstance(x, PartitionSpec))[0]
    return {param_path(path): tuple(spec).index(LAYERS) for path, spec in leaves
            if LAYERS in tuple(spec)}


def layerwise(inner: optax.GradientTransformation, axes: Mapping[str, int]
              ) -> optax.GradientTransformation:
    """`inner` applied to each layer of the parameters it sees, independently (vmapped over
    the `layers` axis given by `axes[path]`); its state gains a leading layers axis.

    Exact for optimizers whose statistics are per parameter (Adafactor, AdamW): their only
    shared state, the step count, is the same for every layer.
    """
    def move(tree, to_front: bool):
        def one(path, x):
            axis = axes[param_path(path)]
            return jnp.moveaxis(x, axis, 0) if to_front else jnp.moveaxis(x, 0, axis)
        return jax.tree_util.tree_map_with_path(one, tree)

    def init(params):
        if not jax.tree.leaves(params):  # a group without stacked parameters
            return inner.init(params)
        return jax.vmap(inner.init)(move(params, True))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("layerwise optimizers need the parameters in update().")
        if not jax.tree.leaves(updates):
            return inner.update(updates, state, params)
        new, state = jax.vmap(inner.update)(move(updates, True), state, move(params, True))
        return move(new, False), state

    return optax.GradientTransformation(init, update)


class Optimizer(NamedTuple):
    """An optax transformation that also names the parameters it never updates, so the
    train step can leave them out of differentiation (`train.make_train_step`)."""

    init: optax.TransformInitFn
    update: optax.TransformUpdateExtraArgsFn
    frozen: Callable[[Any], Any]  # params -> tree of bools (True: frozen)


def make_optimizer(
    name: str = "adafactor",
    learning_rate: float | optax.Schedule = 1e-3,
    weight_decay: float = 0.0,
    decay_rate: float = 0.8,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    step_offset: int = 0,
    frozen: Sequence[str] = (),
    group_learning_rates: Mapping[str, float] | None = None,
    groups: Sequence[ParamGroup] = (),
    layer_axes: Mapping[str, int] | None = None,
) -> Optimizer:
    """The run's optimizer (`Settings` fields) with parameter groups.

    `frozen` and `group_learning_rates` (path regexes, e.g. from gin) come first, then
    `groups` (a method's `param_groups()`); the first match wins. `layer_axes` ({path:
    axis}, `layer_axes()`) marks the parameters optimised layer by layer.
    """
    settings = Settings(name, learning_rate, weight_decay, decay_rate,
                        multiply_by_parameter_scale, clipping_threshold, step_offset)
    groups = ([ParamGroup(p, frozen=True) for p in frozen]
              + [ParamGroup(p, optimizer={"learning_rate": lr})
                 for p, lr in (group_learning_rates or {}).items()]
              + list(groups))
    per_label: dict[str, Callable[[], optax.GradientTransformation]] = {
        DEFAULT: settings.build}
    for index, group in enumerate(groups):
        if not group.frozen:
            per_label[str(index)] = dataclasses.replace(settings, **group.optimizer).build
    axes = dict(layer_axes or {})
    transforms = {FROZEN: optax.set_to_zero()}
    for label, build in per_label.items():
        transforms[label] = build()
        transforms[label + STACKED] = layerwise(build(), axes)
    labels = lambda params: param_labels(params, groups, axes)
    tx = optax.multi_transform(transforms, labels)
    return Optimizer(tx.init, tx.update,
                     lambda params: jax.tree.map(lambda label: label == FROZEN, labels(params)))
