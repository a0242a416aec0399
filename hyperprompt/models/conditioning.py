"""`Conditioning`: what a task-conditioning method hands to the backbone.

The backbone reads only the fields that are set. Per-layer tensors are stacked
on a leading `layers` axis ([L, ...]) so that they enter an `nn.scan`-ned
layer stack as scanned inputs; `layer_slice` gives one layer's share when the
stack is unrolled. A method that needs a layer's own activations supplies a
pure function (`LayerHook.fn`, static) plus per-layer parameters; the backbone
calls it at the injection point and never sees the method's math.

Injection points (see DESIGN.md):
  input_prompt            [B, P, D]  prepended to the encoder input embeddings
  kv_prefix.key/value     [L, B, P, H, Dh]  prepended to self-attention K and V
  ffn_gate                fn(params_l, x [B, T, D], name, h [B, T, in], kernel [in, out])
                          -> [B, T, out], replaces `h @ kernel` for every FFN matrix
                          (`name`: wi / wi_0, wi_1 / wo; `x` is the FFN block's input)
  adapter                 fn(params_l, position, y [B, T, D], norm_l) -> [B, T, D],
                          applied to each sublayer's output before the residual add
                          (position 0: self-attention, 1: FFN)
  adapter_norm.scale/bias [L, B, 2, D]  per-layer, per-position LayerNorm gamma/beta,
                          handed to the adapter fn as norm_l = (scale [B, D], bias [B, D])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import struct

Array = jax.Array

ATTENTION_POSITION = 0
MLP_POSITION = 1


@struct.dataclass
class KVPrefix:
    """Per-layer prompts for self-attention keys and values: each [L, B, P, H, Dh]."""

    key: Array
    value: Array


@struct.dataclass
class LayerHook:
    """A method's pure function plus its per-layer parameters (leaves [L, ...])."""

    params: Any
    fn: Callable[..., Array] = struct.field(pytree_node=False)


@struct.dataclass
class AdapterNorm:
    """Generated LayerNorm gamma/beta per layer and adapter position: [L, B, 2, D]."""

    scale: Array
    bias: Array


@struct.dataclass
class StackConditioning:
    """Conditioning of one stack (encoder or decoder); every leaf has a layers axis."""

    kv_prefix: KVPrefix | None = None
    ffn_gate: LayerHook | None = None
    adapter: LayerHook | None = None
    adapter_norm: AdapterNorm | None = None


@struct.dataclass
class Conditioning:
    """Everything a method injects into one forward pass; empty = the plain backbone."""

    input_prompt: Array | None = None
    encoder: StackConditioning = struct.field(default_factory=StackConditioning)
    decoder: StackConditioning = struct.field(default_factory=StackConditioning)


def layer_slice(stack: StackConditioning, layer: int) -> StackConditioning:
    """The conditioning of layer `layer` of an unrolled stack (leading axis indexed)."""
    return jax.tree.map(lambda x: x[layer], stack)


def check_num_layers(stack: StackConditioning, num_layers: int, where: str) -> None:
    """Raise if a per-layer tensor's leading axis does not match the stack depth."""
    for leaf in jax.tree.leaves(stack):
        if leaf.shape[0] != num_layers:
            raise ValueError(
                f"{where} conditioning has a leading layers axis of {leaf.shape[0]} but the "
                f"stack has {num_layers} layers; the method must stack one entry per layer."
            )
