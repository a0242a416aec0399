"""Attention masks, unpacked or packed: bool [B, 1, Q, K] (the 1 broadcasts over heads).

A packed row holds several examples one after another; `segment_ids` [B, T] number
them 1, 2, ... (0 = padding), as seqio's packing emits them. A query sees a key only
when both are valid and, in a packed row, in the same segment; in the decoder's
self-attention the key also must not come after the query. Without segment ids
(unpacked) only validity and causality remain.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def encoder_valid_mask(encoder_input_tokens: Array, prompt_length: int) -> Array:
    """[B, P + T] bool: prepended prompt positions are always valid, tokens where id > 0."""
    valid = encoder_input_tokens > 0
    if prompt_length:
        ones = jnp.ones((valid.shape[0], prompt_length), bool)
        valid = jnp.concatenate([ones, valid], axis=1)
    return valid


def pair_mask(q_valid: Array, k_valid: Array, q_segments: Array | None = None,
              k_segments: Array | None = None) -> Array:
    """[B, Q], [B, K] (valid, and segment ids when packed) -> [B, 1, Q, K]."""
    mask = q_valid[:, :, None] & k_valid[:, None, :]
    if (q_segments is None) != (k_segments is None):
        raise ValueError("Packed attention needs the segment ids of both queries and keys; "
                         "pass encoder_segment_ids and decoder_segment_ids together.")
    if q_segments is not None:
        mask = mask & (q_segments[:, :, None] == k_segments[:, None, :])
    return mask[:, None]


def causal_mask(valid: Array, segment_ids: Array | None = None) -> Array:
    """Decoder self-attention: [B, T] -> [B, 1, T, T], key index <= query index."""
    length = valid.shape[1]
    return pair_mask(valid, valid, segment_ids, segment_ids) & jnp.tril(
        jnp.ones((length, length), bool))
