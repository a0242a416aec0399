"""The train state {step, params, opt_state}: sharded initialisation and restore."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from hyperprompt import checkpoints, partitioning
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel


def abstract_boxed(model: EncoderDecoderModel, feature_lengths: Mapping[str, int],
                   seed: int = 0):
    """The parameters as shapes, boxed with their logical axis names (nothing allocated)."""
    rng = jax.random.PRNGKey(seed)
    return jax.eval_shape(lambda: model.init(rng, feature_lengths["inputs"],
                                             feature_lengths["targets"])["params"])


def params_initializer(model: EncoderDecoderModel, feature_lengths: Mapping[str, int],
                       seed: int, shardings=None):
    """The jitted `() -> params` that `init_state` runs, each parameter created in its
    sharding. With scan_layers its program holds one layer per stack, so compiling it takes
    the same time at any depth (tests/test_state.py)."""
    rng = jax.random.PRNGKey(seed)
    enc_len, dec_len = feature_lengths["inputs"], feature_lengths["targets"]
    return jax.jit(lambda: nn.unbox(model.init(rng, enc_len, dec_len)["params"]),
                   out_shardings=shardings)


def init_state(model: EncoderDecoderModel, tx: optax.GradientTransformation,
               feature_lengths: Mapping[str, int], mesh, seed: int, boxed=None):
    """Sharded {step, params, opt_state}: parameters placed by their logical axes.

    `boxed`: `abstract_boxed(model, feature_lengths, seed)` when the caller has it.
    """
    if boxed is None:
        boxed = abstract_boxed(model, feature_lengths, seed)
    shardings = partitioning.param_shardings(boxed, mesh)
    params = params_initializer(model, feature_lengths, seed, shardings)()
    opt_state = jax.jit(tx.init)(params)
    step = jax.device_put(jnp.zeros((), jnp.int32), NamedSharding(mesh, PartitionSpec()))
    return {"step": step, "params": params, "opt_state": opt_state}


def abstract_params(model: EncoderDecoderModel, feature_lengths: Mapping[str, int], mesh):
    """ShapeDtypeStructs of the parameters, each with its NamedSharding (no allocation)."""
    shardings = partitioning.param_shardings(abstract_boxed(model, feature_lengths), mesh)
    shapes = jax.eval_shape(lambda: nn.unbox(model.init(  # unbox inside the trace
        jax.random.PRNGKey(0), feature_lengths["inputs"], feature_lengths["targets"])["params"]))
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        shapes, shardings)


def restore_trained(model: EncoderDecoderModel, model_dir: str,
                    feature_lengths: Mapping[str, int], mesh):
    """(step, params) of MODEL_DIR's latest checkpoint; UsageError when there is none.

    Only parameters are read, so eval/infer need no optimizer settings; nothing is written,
    so they work beside a `train` running on MODEL_DIR.
    """
    if checkpoints.latest_step(model_dir) is None:
        raise UsageError(f"no checkpoint in {checkpoints.checkpoint_dir(model_dir)}; train "
                         f"first or point MODEL_DIR at a trained run.")
    with checkpoints.make_manager(model_dir, read_only=True) as manager:
        step = manager.latest_step()
        return step, checkpoints.restore_params(manager, step,
                                                abstract_params(model, feature_lengths, mesh))
