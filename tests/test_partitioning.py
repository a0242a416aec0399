"""Mesh and batch placement (train-step equality under each rule set: test_sharding_rules.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import partitioning
from hyperprompt.errors import UsageError


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


def test_one_device_runs_build_meshes_over_the_first_device():
    """The test helper that the long integration runs train under (tests/conftest.py)."""
    from tests.conftest import one_device_runs

    with one_device_runs():
        assert partitioning.make_mesh(1).devices.tolist() == [[jax.devices()[0]]]
    assert partitioning.make_mesh(1).devices.size == len(jax.devices()) == 8
