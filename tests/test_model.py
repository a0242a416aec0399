"""Loss and scoring against a naive numpy cross entropy (t5x's definitions)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.model import EncoderDecoderModel, cross_entropy_with_z_loss
from hyperprompt.models.t5 import Transformer

BATCH = {
    "encoder_input_tokens": jnp.array([[5, 6, 7, 1], [8, 1, 0, 0]], jnp.int32),
    "decoder_input_tokens": jnp.array([[0, 9, 10], [0, 11, 0]], jnp.int32),
    "decoder_target_tokens": jnp.array([[9, 10, 1], [11, 1, 0]], jnp.int32),
    "decoder_loss_weights": jnp.array([[1, 1, 1], [1, 1, 0]], jnp.int32),
}


def naive_token_losses(logits, targets):
    """-log softmax(logits)[target] and logsumexp, in float64."""
    logits = np.asarray(logits, np.float64)
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    picked = np.take_along_axis(logits, np.asarray(targets)[..., None], -1)[..., 0]
    return lse - picked, lse


def test_cross_entropy_with_z_loss_matches_naive():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 11)).astype(np.float32) * 3
    targets = rng.integers(0, 11, size=(2, 3))
    total, z = cross_entropy_with_z_loss(jnp.asarray(logits), jnp.asarray(targets), 1e-4)
    xent, lse = naive_token_losses(logits, targets)
    np.testing.assert_allclose(z, 1e-4 * lse**2, rtol=1e-5)
    np.testing.assert_allclose(total, xent + 1e-4 * lse**2, rtol=1e-5)


@pytest.mark.parametrize("factor", ["NUM_REAL_TARGET_TOKENS", None, 233472.0])
def test_loss_normalisation_as_t5x(tiny_config, factor):
    model = EncoderDecoderModel(Transformer(tiny_config), z_loss=1e-4,
                                loss_normalizing_factor=factor)
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])
    loss, metrics = model.loss_fn(params, BATCH)
    xent, lse = naive_token_losses(model.logits(params, BATCH), BATCH["decoder_target_tokens"])
    w = np.asarray(BATCH["decoder_loss_weights"], np.float64)
    summed = np.sum((xent + 1e-4 * lse**2) * w)
    want = {"NUM_REAL_TARGET_TOKENS": summed / w.sum(), None: summed, 233472.0: summed / 233472}
    np.testing.assert_allclose(loss, want[factor], rtol=1e-5)
    np.testing.assert_allclose(metrics["cross_ent_loss_per_token"], np.sum(xent * w) / w.sum(),
                               rtol=1e-5)
    assert metrics["num_tokens"] == 5


def test_score_batch_is_target_log_likelihood(tiny_config):
    model = EncoderDecoderModel(Transformer(tiny_config))
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])
    xent, _ = naive_token_losses(model.logits(params, BATCH), BATCH["decoder_target_tokens"])
    want = -np.sum(xent * np.asarray(BATCH["decoder_loss_weights"]), axis=-1)
    np.testing.assert_allclose(model.score_batch(params, BATCH), want, rtol=1e-5)


def test_bad_loss_normalizing_factor_is_rejected(tiny_config):
    with pytest.raises(ValueError, match="LOSS_NORMALIZING_FACTOR"):
        EncoderDecoderModel(Transformer(tiny_config), loss_normalizing_factor="TOKENS")
