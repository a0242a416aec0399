"""Pretrained tensors into the model's (sharded) parameters, and back out to HF.

Restoring streams one tensor at a time: each target leaf is built with
`jax.make_array_from_callback` in its own sharding from a single host array
that is dropped right after, so XXL never sits on one host twice.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from hyperprompt.convert import sources
from hyperprompt.convert.hf_config import hf_config_for
from hyperprompt.convert.hf_mapping import TRANSPOSE, hf_parameter_map
from hyperprompt.errors import UsageError
from hyperprompt.files import write_json
from hyperprompt.models.configs import T5Config
from hyperprompt.optim import flat_paths, param_path

# Parameters of a task-conditioning method: kept at their initialisation when absent.
METHOD_PREFIX = "conditioner/"


def scanned_view(tensors: dict[str, sources.Tensor], config: T5Config
                 ) -> dict[str, sources.Tensor]:
    """Stack `layers_i` tensors into the scanned layout (`encoder/encoder/...`), lazily."""
    if not config.scan_layers:
        return tensors
    out, stacks = {}, {}
    for name, tensor in tensors.items():
        parts = name.split("/")
        if len(parts) > 2 and parts[0] in ("encoder", "decoder") and parts[1].startswith(
                "layers_"):
            key = "/".join([parts[0], parts[0], *parts[2:]])
            stacks.setdefault(key, {})[int(parts[1].removeprefix("layers_"))] = tensor
        else:
            out[name] = tensor
    axis = config.param_scan_axis
    for key, layers in stacks.items():
        ordered = [layers[i] for i in sorted(layers)]
        shape = list(ordered[0].shape)
        shape.insert(axis, len(ordered))
        out[key] = sources.Tensor(tuple(shape), lambda ordered=ordered: np.stack(
            [t.load() for t in ordered], axis=axis))
    return out


def load_into(target: Any, tensors: dict[str, sources.Tensor], origin: str) -> Any:
    """Arrays shaped and sharded like `target` (jax arrays or ShapeDtypeStructs with sharding).

    Method parameters missing from the checkpoint keep the target's values (their
    initialisation); a missing or differently shaped backbone parameter is an error.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    wanted = {param_path(p) for p, _ in leaves}
    extra = sorted(set(tensors) - wanted)
    if extra:
        raise UsageError(f"{origin} has {extra[0]} ({len(extra)} tensors in all) that this "
                         f"model lacks; check the model gin file (size, v1.0/v1.1).")
    out = []
    for path, leaf in leaves:
        key = param_path(path)
        if key not in tensors:
            if key.startswith(METHOD_PREFIX) and isinstance(leaf, jax.Array):
                out.append(leaf)
                continue
            raise UsageError(f"{origin} has no parameter {key}; check the model gin file.")
        tensor = tensors[key]
        if tuple(tensor.shape) != tuple(leaf.shape):
            raise UsageError(f"{origin} stores {key} as {list(tensor.shape)} but the model has "
                             f"{list(leaf.shape)}; use the gin file of the checkpoint's size.")
        host = np.asarray(tensor.load(), dtype=leaf.dtype)
        out.append(jax.make_array_from_callback(leaf.shape, leaf.sharding,
                                                lambda index, host=host: host[index]))
        del host
    return jax.tree_util.tree_unflatten(treedef, out)


def load_pretrained(path: str, fmt: str, config: T5Config, target: Any) -> Any:
    """Read a checkpoint of any supported format into parameters shaped like `target`."""
    tensors = scanned_view(sources.read(path, fmt, config), config)
    return load_into(target, tensors, origin=path)


def export_hf(params: Any, config: T5Config, directory: str) -> str:
    """Write `model.safetensors` + `config.json` that transformers' T5 loads."""
    from safetensors.numpy import save_file

    from hyperprompt.models.layout import unscan_params

    if config.scan_layers:
        params = unscan_params(params, config)
    flat = flat_paths(params)
    state = {}
    for hf_name, ours, how in hf_parameter_map(config):
        value = np.asarray(jax.device_get(flat[ours]), np.float32)
        state[hf_name] = np.ascontiguousarray(value.T if how == TRANSPOSE else value)
    os.makedirs(directory, exist_ok=True)
    save_file(state, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(directory, "config.json"), hf_config_for(config))
    return directory
