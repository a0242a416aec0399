"""Adapters (Houlsby et al. 2019, in the form of Karimi Mahabadi et al., ACL 2021).

A bottleneck adapter after the self-attention (position 0) and the FFN (position 1)
sublayer of every encoder and decoder layer (not after cross-attention), on the
sublayer's output y [B, T, d] before the residual add:

    adapter(y) = y + LN_{γ,β}(U act(D y + b_D) + b_U)

D: d -> b = d / r, U: b -> d, act the tanh form of GELU (the authors' `gelu_new`), LN a
LayerNorm over d (mean and variance, eps 1e-5) with gain γ and bias β, applied to the
adapter's output as the authors' code does (`add_layer_norm_after_adapter`).

  adapters        one set per task (T sets of D, b_D, U, b_U, γ, β per layer and position)
  single_adapter  one set shared by all tasks

As the authors' released code (github:rabeehk/hyperformer, adapter_utils.py and
adapter_configuration.py): D, U ~ N(0, 0.01^2), zero biases, γ = 1, β = 0, reduction
factor 32. The backbone is frozen except all of its LayerNorm scales (their
`unfreeze_layer_norms`). HyperFormer(++) (hyperformer.py) generates the same weights and
runs them through `stack_conditioning`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.errors import UsageError
from hyperprompt.methods.base import Method, register
from hyperprompt.models.conditioning import (
    AdapterNorm,
    Conditioning,
    LayerHook,
    StackConditioning,
)
from hyperprompt.models.configs import T5Config
from hyperprompt.optim import BACKBONE, ParamGroup

POSITIONS = 2  # after self-attention, after the FFN
STD = 0.01  # the authors' `weight_init_range`
NORM_EPS = 1e-5  # torch's layer_norm default, which the authors' code uses
# The backbone's LayerNorm scales (`*_layer_norm/scale`, `encoder_norm/scale`, ...).
BACKBONE_NORMS = r"(?!conditioner/).*norm/scale"
# Everything of the backbone but its LayerNorm scales frozen (first match wins).
FREEZE_BACKBONE_BUT_NORMS = (ParamGroup(BACKBONE_NORMS), ParamGroup(BACKBONE, frozen=True))


def adapter_shapes(d: int, bottleneck: int) -> dict[str, tuple[int, ...]]:
    """name -> shape of one adapter's weights (one layer, position and task)."""
    return {"down": (d, bottleneck), "down_bias": (bottleneck,), "up": (bottleneck, d),
            "up_bias": (d,), "norm_scale": (d,), "norm_bias": (d,)}


# name -> logical axis names of `adapter_shapes`: the model width is `embed` (split over
# `data` by the FSDP rules, as the backbone's), the bottleneck is never split.
ADAPTER_AXES: dict[str, tuple[str | None, ...]] = {
    "down": ("embed", None), "down_bias": (None,), "up": (None, "embed"), "up_bias": ("embed",),
    "norm_scale": ("embed",), "norm_bias": ("embed",)}


def apply_adapter(params: Mapping[str, jax.Array], position: int, y: jax.Array,
                  norm: tuple[jax.Array, jax.Array]) -> jax.Array:
    """The `adapter` LayerHook fn of one layer: y [B, T, d] -> adapter(y) [B, T, d].

    params: each task's weights [T, 2, ...] (`adapter_shapes`) and `task_ids` [B];
    norm: this position's (γ, β), each [B, d], already gathered per example.
    """
    pick = lambda name: jnp.take(params[name][:, position], params["task_ids"], axis=0)  # noqa: E731
    x = y.astype(jnp.float32)
    h = jnp.einsum("btd,bdk->btk", x, pick("down")) + pick("down_bias")[:, None]
    h = jax.nn.gelu(h, approximate=True)
    h = jnp.einsum("btk,bkd->btd", h, pick("up")) + pick("up_bias")[:, None]
    mean = h.mean(-1, keepdims=True)
    normed = (h - mean) * jax.lax.rsqrt(((h - mean) ** 2).mean(-1, keepdims=True) + NORM_EPS)
    scale, bias = norm
    return (x + normed * scale[:, None] + bias[:, None]).astype(y.dtype)


def stack_conditioning(weights: Mapping[str, jax.Array], task_ids: jax.Array
                       ) -> StackConditioning:
    """Each task's adapters of one stack (`adapter_shapes` names, each [T, L, 2, ...]) as
    the stack's injection points: the LayerNorm's γ, β gathered per example
    (`adapter_norm` [L, B, 2, d]); D, b_D, U, b_U per task, gathered inside each layer."""
    depth = weights["down"].shape[1]
    per_layer = {k: jnp.moveaxis(weights[k], 1, 0)  # [L, T, 2, ...]
                 for k in ("down", "down_bias", "up", "up_bias")}
    per_layer["task_ids"] = jnp.broadcast_to(task_ids, (depth, *task_ids.shape))
    norm = {k: jnp.moveaxis(jnp.take(weights[k], task_ids, axis=0), 0, 1)  # [L, B, 2, d]
            for k in ("norm_scale", "norm_bias")}
    return StackConditioning(adapter=LayerHook(per_layer, apply_adapter),
                             adapter_norm=AdapterNorm(norm["norm_scale"], norm["norm_bias"]))


def stack_depths(config: T5Config) -> dict[str, int]:
    return {"encoder": config.num_encoder_layers, "decoder": config.num_decoder_layers}


class Adapters(Method):
    """Per stack, per adapter weight: [T, L, 2, ...] (T = 1 when `shared`)."""

    config: T5Config  # the backbone's (width, depths); gin binds the model's T5Config
    num_tasks: int
    shared: bool = False  # one set for all tasks ("single adapter")
    reduction_factor: int = 32

    @nn.nowrap
    def bottleneck(self, d: int) -> int:
        if d % self.reduction_factor:
            raise UsageError(f"Adapters.reduction_factor={self.reduction_factor} does not divide "
                             f"the model width {d}; choose a divisor of {d}.")
        return d // self.reduction_factor

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        """task_ids [B] -> each stack's adapters and their LayerNorms."""
        sets = 1 if self.shared else self.num_tasks
        ids = jnp.zeros_like(task_ids) if self.shared else task_ids
        stacks = {}
        for stack, depth in stack_depths(self.config).items():
            weights = {}
            for name, shape in adapter_shapes(self.config.emb_dim,
                                              self.bottleneck(self.config.emb_dim)).items():
                init = {"down": nn.initializers.normal(STD), "up": nn.initializers.normal(STD),
                        "norm_scale": nn.initializers.ones}.get(name, nn.initializers.zeros)
                axes = ("task", "layers", None, *ADAPTER_AXES[name])
                weights[name] = self.param(f"{stack}_{name}", nn.with_logical_partitioning(
                    init, axes), (sets, depth, POSITIONS, *shape))
            stacks[stack] = stack_conditioning(weights, ids)
        return Conditioning(**stacks)

    @nn.nowrap
    def param_groups(self) -> Sequence[ParamGroup]:
        return FREEZE_BACKBONE_BUT_NORMS

    @nn.nowrap
    def parameter_count(self, config: T5Config) -> int:
        d = config.emb_dim
        per_adapter = sum(map(math.prod, adapter_shapes(d, self.bottleneck(d)).values()))
        sets = 1 if self.shared else self.num_tasks
        return sets * POSITIONS * sum(stack_depths(config).values()) * per_adapter

    @nn.nowrap
    def label(self) -> str:
        return "Single adapter" if self.shared else "Adapters"


register("adapters", Adapters)
register("single_adapter", Adapters, shared=True)
