"""Autoregressive decoding over a preallocated KV cache (jit-friendly, static shapes).

A decode function takes `tokens_to_logits(tokens [B, 1], cache, step) -> (logits [B, V],
cache)`; greedy is the one here, and beam search can share the same signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from hyperprompt.argmax import argmax

Array = jax.Array
TokensToLogits = Callable[[Array, Any, Array], tuple[Array, Any]]


def greedy_decode(tokens_to_logits: TokensToLogits, cache: Any, batch_size: int,
                  max_decode_length: int, eos_id: int, bos_id: int = 0) -> Array:
    """Argmax decoding -> tokens [B, max_decode_length], zero-padded after EOS.

    Stops early (lax.while_loop) once every sequence has produced `eos_id`.
    """
    tokens = jnp.zeros((batch_size, max_decode_length), jnp.int32)
    done = jnp.zeros((batch_size,), bool)
    prev = jnp.full((batch_size, 1), bos_id, jnp.int32)

    def cond(state):
        step, _, _, done, _ = state
        return (step < max_decode_length) & ~jnp.all(done)

    def body(state):
        step, prev, tokens, done, cache = state
        logits, cache = tokens_to_logits(prev, cache, step)
        nxt = argmax(logits)
        nxt = jnp.where(done, 0, nxt)
        tokens = tokens.at[:, step].set(nxt)
        return step + 1, nxt[:, None], tokens, done | (nxt == eos_id), cache

    state = (jnp.array(0, jnp.int32), prev, tokens, done, cache)
    return jax.lax.while_loop(cond, body, state)[2]
