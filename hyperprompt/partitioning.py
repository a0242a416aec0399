"""Mesh, logical-axis rules and shardings (t5x's names; maxtext-style tables).

Parameters carry logical axis names; a rules table maps them to the mesh axes
`data` and `model`. Activations are constrained with the same names.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from hyperprompt.errors import UsageError

MESH_AXES = ("data", "model")

# logical axis -> mesh axis (None = replicated). 1-D model parallelism as t5x's
# standard rules: the wide dimensions (vocab, mlp, heads) split over `model`.
LOGICAL_AXIS_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("kv", None),
    ("embed", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
    ("prompt", None),
    ("task", None),
)


def make_mesh(model_parallel: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """(data, model) mesh over all devices; Auto axis types for logical-rule sharding."""
    devices = list(devices if devices is not None else jax.devices())
    if len(devices) % model_parallel:
        raise UsageError(f"{len(devices)} devices cannot be split into model_parallel="
                         f"{model_parallel}; choose a divisor of the device count.")
    shape = (len(devices) // model_parallel, model_parallel)
    return Mesh(np.array(devices).reshape(shape), MESH_AXES,
                axis_types=(AxisType.Auto,) * len(MESH_AXES))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    data = mesh.shape["data"]
    if batch_size % data:
        raise UsageError(f"BATCH_SIZE={batch_size} is not divisible by the data-parallel mesh "
                         f"size {data}; use a multiple of {data}.")


def param_shardings(boxed_params, mesh: Mesh):
    """NamedShardings for a tree of nn.Partitioned/LogicallyPartitioned parameters."""
    specs = nn.get_partition_spec(boxed_params)
    mesh_specs = nn.logical_to_mesh(specs, LOGICAL_AXIS_RULES)
    return jax.tree.map(lambda s: NamedSharding(mesh, s), mesh_specs,
                        is_leaf=lambda x: isinstance(x, PartitionSpec))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis over `data`, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec("data"))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Place a host-local numpy batch on the mesh (multi-host: each host its slice)."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
