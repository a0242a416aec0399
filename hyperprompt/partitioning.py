"""Mesh, logical-axis rules, shardings and the data layout across processes.

Parameters carry logical axis names; a rules table (t5x's `standard_logical_axis_rules`,
bound through gin) maps them to the mesh axes `data` and `model`. Activations are
constrained with the same names.

Multi-process: each process feeds the rows of the global batch that its devices hold along
`data` (`DataLayout`); `shard_batch` assembles the global array from those rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from hyperprompt.errors import UsageError

MESH_AXES = ("data", "model")
Rules = tuple[tuple[str, str | None], ...]

# Each table: the first rule naming a logical axis whose mesh axis is still free wins.
_SPLIT_RULES: dict[tuple[int, int], Rules] = {
    # (activation_partitioning_dims, parameter_partitioning_dims): t5x's tables.
    (1, 1): (("batch", "data"), ("vocab", "model"), ("embed", None), ("mlp", "model"),
             ("heads", "model"), ("kv", None), ("joined_kv", "model")),
    (2, 1): (("batch", "data"), ("vocab", "model"), ("mlp", "model"), ("heads", "model"),
             ("kv", None), ("joined_kv", "model"), ("embed", "model")),
    # parameter dims 2 = FSDP: every parameter with an `embed` axis (all matrices, prompts,
    # task embeddings, norms) and so its optimizer state is split over `data` too.
    (1, 2): (("batch", "data"), ("vocab", "model"), ("mlp", "model"), ("heads", "model"),
             ("kv", None), ("joined_kv", "model"), ("embed", "data")),
    (2, 2): (("batch", "data"), ("vocab", "model"), ("mlp", "model"), ("heads", "model"),
             ("kv", None), ("joined_kv", "model"), ("embed", "model"), ("embed", "data")),
}
# Axes never split (t5x's replicated names, plus the methods' own).
_REPLICATED: Rules = tuple((name, None) for name in (
    "relpos_buckets", "abspos_buckets", "length", "layers", "stack", "mlp_activations",
    "prompt", "task"))


@gin.configurable
def standard_logical_axis_rules(activation_partitioning_dims: int = 1,
                                parameter_partitioning_dims: int = 1,
                                additional_rules: Sequence[tuple[str, str | None]] = ()
                                ) -> Rules:
    """t5x's rule sets: 1 = 1-D model parallelism; activation dims 2 also split activations'
    `embed` over `model`; parameter dims 2 (FSDP) splits parameters' `embed` over `data`."""
    key = (activation_partitioning_dims, parameter_partitioning_dims)
    if key not in _SPLIT_RULES:
        raise UsageError(f"activation_partitioning_dims={key[0]}, parameter_partitioning_dims="
                         f"{key[1]} is not a rule set; each must be 1 or 2.")
    return (*_SPLIT_RULES[key], *_REPLICATED, *map(tuple, additional_rules))


# The default (1-D model parallelism), for code that runs without gin.
LOGICAL_AXIS_RULES: Rules = standard_logical_axis_rules()


def make_mesh(model_parallel: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """(data, model) mesh over all devices (every process's); Auto axis types for
    logical-rule sharding. A process's devices are consecutive along `data`."""
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


def param_shardings(boxed_params, mesh: Mesh, rules: Rules | None = None):
    """NamedShardings for a tree of nn.Partitioned/LogicallyPartitioned parameters
    (`rules`: the active `nn.logical_axis_rules` when None)."""
    specs = nn.get_partition_spec(boxed_params)
    mesh_specs = nn.logical_to_mesh(specs, rules)
    return jax.tree.map(lambda s: NamedSharding(mesh, s), mesh_specs,
                        is_leaf=lambda x: isinstance(x, PartitionSpec))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis over `data`, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec("data"))


@dataclasses.dataclass(frozen=True)
class DataLayout:
    """This process's rows of a global batch: rows [shard_id * batch_size, + batch_size).

    `num_shards` processes hold different rows; processes that hold the same rows (a
    `model` axis across processes) read the same shard.
    """
    batch_size: int  # rows this process feeds
    shard_id: int
    num_shards: int

    @property
    def rows(self) -> slice:
        return slice(self.shard_id * self.batch_size, (self.shard_id + 1) * self.batch_size)


def data_layout(mesh: Mesh, global_batch_size: int) -> DataLayout:
    """The rows of a [global_batch_size, ...] batch that this process's devices hold."""
    check_batch_size(global_batch_size, mesh)
    indices = batch_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
    starts = sorted({index[0].start or 0 for index in indices.values()})
    stops = sorted({index[0].stop or global_batch_size for index in indices.values()})
    start, stop = starts[0], stops[-1]
    if any(b != a for a, b in zip(stops[:-1], starts[1:], strict=True)):
        raise UsageError("this process's devices hold rows of the batch that are not "
                         "contiguous; build the mesh with make_mesh (processes' devices "
                         "consecutive along `data`).")
    local = stop - start
    return DataLayout(batch_size=local, shard_id=start // local,
                      num_shards=global_batch_size // local)


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh,
                global_batch_size: int | None = None) -> dict[str, jax.Array]:
    """The global batch on the mesh from this process's rows of it (one process: all rows;
    `global_batch_size` defaults to the rows given times the number of data shards)."""
    sharding = batch_sharding(mesh)
    out = {}
    for key, rows in batch.items():
        size = global_batch_size or len(rows) * _shards(mesh)
        out[key] = jax.make_array_from_process_local_data(sharding, rows,
                                                          (size, *rows.shape[1:]))
    return out


def _shards(mesh: Mesh) -> int:
    """How many processes hold different rows of a batch (1 on one process)."""
    data = mesh.shape["data"]
    return data_layout(mesh, data).num_shards


def process_rows(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, np.ndarray]:
    """This process's rows of a global host batch that every process holds whole."""
    rows = data_layout(mesh, len(next(iter(batch.values())))).rows
    return {key: value[rows] for key, value in batch.items()}


def gather(array: jax.Array) -> np.ndarray:
    """A global array as numpy on every process (its shards from all processes)."""
    if array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
