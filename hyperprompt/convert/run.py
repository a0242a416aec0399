"""`hyperprompt convert`: a pretrained checkpoint -> our format (or HF safetensors)."""

from __future__ import annotations

import flax.linen as nn
import jax
import orbax.checkpoint as ocp

from hyperprompt import checkpoints, partitioning
from hyperprompt.convert import hub, model_config, sources
from hyperprompt.convert.restore import export_hf, load_pretrained
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.t5 import Transformer

TARGETS = ("hyperprompt", "hf")


def init_params(model: EncoderDecoderModel, mesh, seed: int = 0):
    """The model's parameters, initialised in their shardings (method params need a value)."""
    rng = jax.random.PRNGKey(seed)
    boxed = jax.eval_shape(lambda: model.init(rng, 8, 8)["params"])
    shardings = partitioning.param_shardings(boxed, mesh)
    return jax.jit(lambda: nn.unbox(model.init(rng, 8, 8)["params"]), out_shardings=shardings)()


def checkpoint_model(path: str, fmt: str) -> EncoderDecoderModel:
    """The plain backbone of the config a checkpoint carries (HF or converted folder)."""
    config = sources.stored_config(path, fmt)
    if config is None:
        raise UsageError(f"{path} carries no model config (a t5x checkpoint or a training run); "
                         f"pass the model --gin_file of its size, e.g. models/t5_1_1_base.gin.")
    return EncoderDecoderModel(Transformer(config))


def convert(src: str, dst: str, fmt: str = "auto", to: str = "hyperprompt",
            model: EncoderDecoderModel | None = None) -> str:
    """Read `src` (a path or HF hub id), check it against `model`, then (only then) write `dst`.

    Without `model`, the network is the checkpoint's own config. A hyperprompt `dst`
    gets model_config.json and model.gin beside its checkpoint (see model_config.py).
    """
    path = hub.local_path(src)
    fmt = sources.resolve_format(path, fmt)
    model = model or checkpoint_model(path, fmt)
    config = model.module.config
    sources.check_config(path, fmt, config)  # before the (compiled) initialisation
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        params = load_pretrained(path, fmt, config, init_params(model, mesh))
        if to == "hf":
            return export_hf(params, config, dst)
        from hyperprompt.train_checks import model_dir_writable

        model_dir_writable(dst)
        with checkpoints.make_manager(dst, async_save=False) as manager:
            if manager.latest_step() is not None:
                raise UsageError(f"{dst} already holds a checkpoint; choose an empty --dst.")
            manager.save(0, args=ocp.args.StandardSave({"params": params}), force=True)
        model_config.save(dst, config, source=src)
        return checkpoints.checkpoint_dir(dst)
