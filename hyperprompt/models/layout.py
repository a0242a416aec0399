"""Convert parameters between the unrolled (`layers_i`) and scanned layer layouts.

Scanned stacks keep one subtree per stack (`encoder/encoder`, `decoder/decoder`)
with the `layers` axis inserted at `config.param_scan_axis` of every leaf.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hyperprompt.models.configs import T5Config

STACKS = (("encoder", "num_encoder_layers"), ("decoder", "num_decoder_layers"))


def scan_params(params: dict, config: T5Config) -> dict:
    """Unrolled params -> scanned params (leaves stacked on `param_scan_axis`)."""
    out = dict(params)
    for stack, depth_field in STACKS:
        tree = dict(params[stack])
        layers = [tree.pop(f"layers_{i}") for i in range(getattr(config, depth_field))]
        tree[stack] = jax.tree.map(lambda *xs: jnp.stack(xs, axis=config.param_scan_axis),
                                   *layers)
        out[stack] = tree
    return out


def unscan_params(params: dict, config: T5Config) -> dict:
    """Scanned params -> unrolled `layers_i` params."""
    out = dict(params)
    for stack, depth_field in STACKS:
        tree = dict(params[stack])
        stacked = tree.pop(stack)
        for i in range(getattr(config, depth_field)):
            tree[f"layers_{i}"] = jax.tree.map(
                lambda x, i=i: jnp.take(x, i, axis=config.param_scan_axis), stacked)
        out[stack] = tree
    return out
