"""Attention masks vs a per-pair loop: packed rows see only their own segment, unpacked
rows get the masks of before packing (validity, causality)."""

import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.models.masks import causal_mask, encoder_valid_mask, pair_mask

# One packed row of three examples plus padding, and an unpacked row.
ENC_TOKENS = np.array([[5, 6, 1, 7, 8, 9, 1, 4, 1, 0, 0],
                       [5, 6, 7, 1, 0, 0, 0, 0, 0, 0, 0]])
ENC_SEGMENTS = np.array([[1, 1, 1, 2, 2, 2, 2, 3, 3, 0, 0],
                         [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]])
DEC_TOKENS = np.array([[3, 1, 4, 4, 1, 2, 1, 0],
                       [3, 3, 1, 0, 0, 0, 0, 0]])
DEC_SEGMENTS = np.array([[1, 1, 2, 2, 2, 3, 3, 0],
                         [1, 1, 1, 0, 0, 0, 0, 0]])


def naive(q_tokens, k_tokens, q_segments=None, k_segments=None, causal=False):
    """[B, 1, Q, K] by looping over every (row, query, key)."""
    batch, q_len = q_tokens.shape
    out = np.zeros((batch, 1, q_len, k_tokens.shape[1]), bool)
    for b in range(batch):
        for q in range(q_len):
            for k in range(k_tokens.shape[1]):
                same = q_segments is None or q_segments[b, q] == k_segments[b, k]
                out[b, 0, q, k] = (q_tokens[b, q] > 0 and k_tokens[b, k] > 0 and same
                                   and (not causal or k <= q))
    return out


def test_packed_masks_keep_each_segment_to_itself():
    enc_valid, dec_valid = jnp.asarray(ENC_TOKENS > 0), jnp.asarray(DEC_TOKENS > 0)
    np.testing.assert_array_equal(
        pair_mask(enc_valid, enc_valid, ENC_SEGMENTS, ENC_SEGMENTS),
        naive(ENC_TOKENS, ENC_TOKENS, ENC_SEGMENTS, ENC_SEGMENTS))
    np.testing.assert_array_equal(
        causal_mask(dec_valid, DEC_SEGMENTS),
        naive(DEC_TOKENS, DEC_TOKENS, DEC_SEGMENTS, DEC_SEGMENTS, causal=True))
    np.testing.assert_array_equal(
        pair_mask(dec_valid, enc_valid, DEC_SEGMENTS, ENC_SEGMENTS),
        naive(DEC_TOKENS, ENC_TOKENS, DEC_SEGMENTS, ENC_SEGMENTS))


def test_unpacked_masks_are_validity_and_causality_only():
    enc_valid, dec_valid = jnp.asarray(ENC_TOKENS > 0), jnp.asarray(DEC_TOKENS > 0)
    np.testing.assert_array_equal(pair_mask(enc_valid, enc_valid), naive(ENC_TOKENS, ENC_TOKENS))
    np.testing.assert_array_equal(causal_mask(dec_valid),
                                  naive(DEC_TOKENS, DEC_TOKENS, causal=True))
    np.testing.assert_array_equal(pair_mask(dec_valid, enc_valid), naive(DEC_TOKENS, ENC_TOKENS))


def test_prepended_prompt_positions_are_valid():
    valid = encoder_valid_mask(jnp.asarray(ENC_TOKENS), 2)
    assert valid.shape == (2, 13) and bool(valid[:, :2].all())
    np.testing.assert_array_equal(valid[:, 2:], ENC_TOKENS > 0)


def test_segment_ids_of_one_side_only_are_refused():
    valid = jnp.ones((1, 3), bool)
    with pytest.raises(ValueError, match="segment ids of both queries and keys"):
        pair_mask(valid, valid, jnp.ones((1, 3), jnp.int32))
