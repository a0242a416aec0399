"""A train step sharded over an 8-device (data=4, model=2) mesh equals the 1-device one."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import partitioning
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.state import init_state
from hyperprompt.train import make_train_step

LENGTHS = {"inputs": 6, "targets": 4}


def batch(n=8):
    rng = np.random.default_rng(0)
    targets = rng.integers(2, 64, size=(n, 4)).astype(np.int32)
    return {
        "encoder_input_tokens": rng.integers(2, 64, size=(n, 6)).astype(np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), targets[:, :-1]], 1),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": np.ones((n, 4), np.int32),
    }


def run_step(model, mesh):
    tx = make_optimizer()
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        state = init_state(model, tx, LENGTHS, mesh, seed=0)
        step = jax.jit(make_train_step(model, tx, 0, use_dropout=False))
        state, metrics = step(state, partitioning.shard_batch(batch(), mesh))
        return jax.device_get(metrics["loss"]), jax.device_get(state["params"]), state


def test_sharded_train_step_equals_single_device(tiny_config):
    assert jax.device_count() == 8, "conftest sets 8 CPU devices"
    model = EncoderDecoderModel(Transformer(tiny_config))
    loss_1, params_1, _ = run_step(model, partitioning.make_mesh(1, jax.devices()[:1]))
    loss_8, params_8, state_8 = run_step(model, partitioning.make_mesh(2))
    kernel = state_8["params"]["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "model")  # (embed, mlp)
    assert kernel.sharding.mesh.shape == {"data": 4, "model": 2}
    np.testing.assert_allclose(loss_8, loss_1, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(params_8), jax.tree.leaves(params_1), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_batch_must_divide_the_data_axis():
    mesh = partitioning.make_mesh(2)
    with pytest.raises(UsageError, match="BATCH_SIZE=6 is not divisible .* 4"):
        partitioning.check_batch_size(6, mesh)
    with pytest.raises(UsageError, match="model_parallel=3"):
        partitioning.make_mesh(3)


def test_shard_batch_splits_the_batch_axis():
    mesh = partitioning.make_mesh(1)
    sharded = partitioning.shard_batch({"x": np.arange(16).reshape(8, 2)}, mesh)["x"]
    assert sharded.sharding.spec == jax.sharding.PartitionSpec("data")
    assert len(sharded.addressable_shards) == 8
    np.testing.assert_array_equal(jnp.asarray(sharded), np.arange(16).reshape(8, 2))
