"""`hyperprompt convert`: a pretrained checkpoint -> our format (or HF safetensors)."""

from __future__ import annotations

import flax.linen as nn
import jax
import orbax.checkpoint as ocp

from hyperprompt import checkpoints, partitioning
from hyperprompt.convert.restore import export_hf, load_pretrained
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel

TARGETS = ("hyperprompt", "hf")


def init_params(model: EncoderDecoderModel, mesh, seed: int = 0):
    """The model's parameters, initialised in their shardings (method params need a value)."""
    rng = jax.random.PRNGKey(seed)
    boxed = jax.eval_shape(lambda: model.init(rng, 8, 8)["params"])
    shardings = partitioning.param_shardings(boxed, mesh)
    return jax.jit(lambda: nn.unbox(model.init(rng, 8, 8)["params"]), out_shardings=shardings)()


def convert(model: EncoderDecoderModel, src: str, dst: str, fmt: str = "auto",
            to: str = "hyperprompt") -> str:
    """Read `src`, check it against the model, then (only then) write `dst`."""
    config = model.module.config
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        params = load_pretrained(src, fmt, config, init_params(model, mesh))
        if to == "hf":
            return export_hf(params, config, dst)
        from hyperprompt.train import check_model_dir

        check_model_dir(dst)
        with checkpoints.make_manager(dst, async_save=False) as manager:
            if manager.latest_step() is not None:
                raise UsageError(f"{dst} already holds a checkpoint; choose an empty --dst.")
            manager.save(0, args=ocp.args.StandardSave({"params": params}), force=True)
        return checkpoints.checkpoint_dir(dst)
