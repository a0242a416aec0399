"""A train step compiled from abstract arrays for any mesh, and its per-device memory.

Nothing is allocated: parameters are `ShapeDtypeStruct`s placed by their logical axes, the
optimizer state is placed as training places it (`state.optimizer_initializer`), and the step is
the trainer's own (`train.make_train_step`, state donated). So T5 XXL on a simulated pod
(`--xla_force_host_platform_device_count=256`) costs one compile, and XLA's buffer
assignment says what one device holds. `benchmarks/compile_xxl.py` tabulates it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from hyperprompt import partitioning
from hyperprompt.methods.base import conditioner_of, registered
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import layer_axes, make_optimizer
from hyperprompt.state import abstract_boxed, abstract_params, optimizer_initializer, placed
from hyperprompt.train import make_train_step


@dataclasses.dataclass(frozen=True)
class DeviceBytes:
    """XLA's memory analysis of one device's program (bytes)."""

    arguments: int  # train state + batch shards
    outputs: int
    temporaries: int  # gradients, activations, optimizer scratch
    aliased: int  # outputs written into donated arguments

    @property
    def peak(self) -> int:
        """Live at once at worst: arguments, temporaries and the outputs that need their own
        buffers."""
        return self.arguments + self.temporaries + self.outputs - self.aliased


def build_model(config: T5Config, method: str, num_tasks: int) -> EncoderDecoderModel:
    """The network of a registered method at `config`'s size."""
    return EncoderDecoderModel(Transformer(config, registered()[method].build(config, num_tasks)))


def batch_shapes(batch_size: int, lengths: Mapping[str, int], mesh
                 ) -> dict[str, jax.ShapeDtypeStruct]:
    """A training batch as abstract arrays, rows over `data`."""
    sharding = partitioning.batch_sharding(mesh)
    token = lambda n: jax.ShapeDtypeStruct((batch_size, n), jnp.int32, sharding=sharding)  # noqa: E731
    return {"encoder_input_tokens": token(lengths["inputs"]),
            "decoder_input_tokens": token(lengths["targets"]),
            "decoder_target_tokens": token(lengths["targets"]),
            "task_ids": jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=sharding)}


def compile_train_step(model: EncoderDecoderModel, lengths: Mapping[str, int],
                       batch_size: int, mesh, rules: partitioning.Rules,
                       optimizer=make_optimizer) -> jax.stages.Compiled:
    """The trainer's jitted, donated step for `model` (its method's parameter groups and
    layer-wise optimizer) lowered from abstract arrays and compiled for `mesh`."""
    groups = conditioner_of(model.module).param_groups()
    with nn.logical_axis_rules(rules), jax.set_mesh(mesh):
        boxed = abstract_boxed(model, lengths)
        axes = layer_axes(boxed)
        tx = optimizer(groups=groups, layer_axes=axes)
        params = abstract_params(model, lengths, mesh, boxed)
        init = optimizer_initializer(tx, params, axes).lower(params).compile()
        opt_state = placed(jax.eval_shape(tx.init, params), init.output_shardings)
        step = jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(mesh, PartitionSpec()))
        state = {"step": step, "params": params, "opt_state": opt_state}
        train_step = jax.jit(make_train_step(model, tx, 0, False), donate_argnums=0)
        return train_step.lower(state, batch_shapes(batch_size, lengths, mesh)).compile()


def device_bytes(compiled: jax.stages.Compiled) -> DeviceBytes:
    """Per-device bytes of a compiled SPMD program (XLA's buffer assignment)."""
    memory = compiled.memory_analysis()
    return DeviceBytes(memory.argument_size_in_bytes, memory.output_size_in_bytes,
                       memory.temp_size_in_bytes, memory.alias_size_in_bytes)

