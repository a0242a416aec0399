"""The train state {step, params, opt_state}: sharded initialisation and restore."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from hyperprompt import checkpoints, partitioning
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models import layout
from hyperprompt.optim import layer_axes, param_path


def abstract_boxed(model: EncoderDecoderModel, feature_lengths: Mapping[str, int],
                   seed: int = 0):
    """The parameters as shapes, boxed with their logical axis names (nothing allocated)."""
    rng = jax.random.PRNGKey(seed)
    return jax.eval_shape(lambda: model.init(rng, feature_lengths["inputs"],
                                             feature_lengths["targets"])["params"])


def params_initializer(model: EncoderDecoderModel, feature_lengths: Mapping[str, int],
                       shardings=None):
    """The jitted `(rng) -> params` that `init_state` runs, each parameter created in its
    sharding. The layers are always initialised scanned (one layer per stack in the program,
    so it compiles in the same time at any depth) and then split into `layers_i` for an
    unrolled model: both layouts start from the same parameters. The key is an argument,
    not a constant of the program: one compiled program serves every seed (a study's
    seeds, a sweep's runs hit the compilation cache), and it draws the same bits."""
    enc_len, dec_len = feature_lengths["inputs"], feature_lengths["targets"]
    config = model.module.config
    scanned = EncoderDecoderModel(model.module.clone(
        config=dataclasses.replace(config, scan_layers=True)))

    def init(rng):
        params = nn.unbox(scanned.init(rng, enc_len, dec_len)["params"])
        return params if config.scan_layers else layout.unscan_params(params, config)

    return jax.jit(init, out_shardings=shardings)


def init_state(model: EncoderDecoderModel, tx: optax.GradientTransformation,
               feature_lengths: Mapping[str, int], mesh, seed: int, boxed=None):
    """Sharded {step, params, opt_state}: parameters placed by their logical axes.

    `boxed`: `abstract_boxed(model, feature_lengths, seed)` when the caller has it.
    """
    if boxed is None:
        boxed = abstract_boxed(model, feature_lengths, seed)
    init = params_initializer(model, feature_lengths, partitioning.param_shardings(boxed, mesh))
    return state_from_params(tx, init(jax.random.PRNGKey(seed)), boxed, mesh)


def state_from_params(tx: optax.GradientTransformation, params, boxed, mesh):
    """{step 0, params, fresh opt_state} from placed parameters (`boxed`: their
    `abstract_boxed` tree, for the optimizer's layer axes)."""
    opt_state = optimizer_initializer(tx, params, layer_axes(boxed))(params)
    step = jax.device_put(jnp.zeros((), jnp.int32), NamedSharding(mesh, PartitionSpec()))
    return {"step": step, "params": params, "opt_state": opt_state}


def optimizer_initializer(tx: optax.GradientTransformation, params,
                          layers: Mapping[str, int] | None = None):
    """The jitted `params -> opt_state`, each statistic of a parameter's shape (moments,
    unfactored second moments) placed like its parameter. optax makes them with
    `zeros_like`, which ties them to nothing: XLA may keep a whole copy on every device.

    `params`: arrays or ShapeDtypeStructs with shardings; `layers`: {path: axis} of the
    parameters optimised layer by layer (`optim.layer_axes`), whose statistics lead with it.
    """
    placed_like = {param_path(path): x for path, x in
                   jax.tree_util.tree_flatten_with_path(params)[0]}
    layers = layers or {}

    def constrain(path, leaf):
        keys = []  # the trailing dict keys: the parameter's path inside the state
        for key in reversed(path):
            if not isinstance(key, jax.tree_util.DictKey):
                break
            keys.insert(0, key)
        name = param_path(keys)
        like = placed_like.get(name)
        if like is None:
            return leaf
        spec = list(like.sharding.spec) + [None] * (len(like.shape) - len(like.sharding.spec))
        shape = list(like.shape)
        if name in layers:  # stacked statistics: the layers axis first
            axis = layers[name]
            shape.insert(0, shape.pop(axis))
            spec.insert(0, spec.pop(axis))
        if tuple(shape) != leaf.shape:  # factored or scalar
            return leaf
        return jax.lax.with_sharding_constraint(
            leaf, NamedSharding(like.sharding.mesh, PartitionSpec(*spec)))

    return jax.jit(lambda p: jax.tree_util.tree_map_with_path(constrain, tx.init(p)))


def abstract_params(model: EncoderDecoderModel, feature_lengths: Mapping[str, int], mesh,
                    boxed=None):
    """ShapeDtypeStructs of the parameters, each with its NamedSharding (no allocation).

    `boxed`: `abstract_boxed(model, feature_lengths)` when the caller has it.
    """
    if boxed is None:
        boxed = abstract_boxed(model, feature_lengths)
    shardings = partitioning.param_shardings(boxed, mesh)
    shapes = jax.eval_shape(lambda: nn.unbox(model.init(  # unbox inside the trace
        jax.random.PRNGKey(0), feature_lengths["inputs"], feature_lengths["targets"])["params"]))
    return placed(shapes, shardings)


def placed(shapes, shardings):
    """A tree of ShapeDtypeStructs, each given the sharding at its place in `shardings`."""
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
