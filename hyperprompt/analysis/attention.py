"""Self-attention statistics from the weights that `MultiHeadAttention` sows.

The backbone sows softmax weights [B, H, Q, K] as `intermediates/<stack>/.../
attention_weights`: per layer (`layers_<i>/...`, unrolled) or stacked on a
leading layers axis (`<stack>/...`, `nn.scan`). A stack's self-attention keys
are [prompt positions; the stack's T tokens] and its queries [input prompt; T
tokens], so the number of prompt keys is K - T (HyperPrompt's K/V prefix plus a
Prompt Tuning input prompt) and the first Q - T queries are prompt positions,
not tokens. Statistics are kept per real token only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from hyperprompt.model import EncoderDecoderModel

Array = jax.Array
# stack -> (self-attention module name, the batch feature whose non-zero ids are its tokens)
STACKS = {"encoder": ("attention", "encoder_input_tokens"),
          "decoder": ("self_attention", "decoder_target_tokens")}
WEIGHTS = "attention_weights"


def attention_entropy(weights: Array) -> Array:
    """Entropy in nats of each attention distribution: [..., K] -> [...]."""
    return jnp.sum(jax.scipy.special.entr(weights), axis=-1)


def prompt_mass(weights: Array, num_prompt_keys: int) -> Array:
    """Attention each query puts on the first `num_prompt_keys` keys: [..., K] -> [...]."""
    return jnp.sum(weights[..., :num_prompt_keys], axis=-1)


def layer_statistics(weights: Array, tokens: int) -> dict[str, Array]:
    """Weights [..., Q, K] -> {"entropy", "mass" (only with prompt keys)} [..., T] per token."""
    queries, keys = weights.shape[-2:]
    weights = weights[..., queries - tokens:, :]  # token queries only: [..., T, K]
    stats = {"entropy": attention_entropy(weights)}
    if keys > tokens:
        stats["mass"] = prompt_mass(weights, keys - tokens)
    return stats


def map_layers(intermediates: Mapping, stack: str, fn: Callable[[Array], Any]) -> Any:
    """`fn` of each layer's self-attention weights [B, H, Q, K], leaves stacked: [L, ...].

    Applied layer by layer where the layers are unrolled, so no [L, B, H, Q, K]
    tensor is built; a scanned stack sows that tensor itself (lower the batch
    size if it does not fit).
    """
    attention, _ = STACKS[stack]
    tree = intermediates[stack]
    if stack in tree:  # nn.scan: one entry, layers stacked on axis 0
        return fn(tree[stack][attention][WEIGHTS][0])
    layers = sorted((k for k in tree if k.startswith("layers_")), key=lambda k: int(k[7:]))
    per_layer = [fn(tree[name][attention][WEIGHTS][0]) for name in layers]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)


def token_statistics(model: EncoderDecoderModel, params, batch: Mapping[str, Array]
                     ) -> dict[str, dict[str, Array]]:
    """Per stack, per token: {"mass", "entropy"} each [L, B, H, T] (mass only with prompts).

    Teacher-forced forward pass, no dropout; pad query rows included (mask them
    with `batch[feature] > 0`), prompt query rows left out. jit-able.
    """
    _, state = model.module.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
        batch["decoder_target_tokens"], enable_dropout=False, task_ids=batch.get("task_ids"),
        mutable=["intermediates"])
    return {stack: map_layers(state["intermediates"], stack,
                              partial(layer_statistics, tokens=batch[feature].shape[1]))
            for stack, (_, feature) in STACKS.items()}
