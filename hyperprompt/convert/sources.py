"""Readers of pretrained checkpoints as lazy tensors keyed by our unscanned parameter paths.

Every reader returns {path: Tensor} where `Tensor.load()` reads one array from disk
when called, so a restore streams tensor by tensor and never holds the whole
model on the host twice.

Formats: `hf` (a save_pretrained folder: config.json + *.safetensors or
pytorch_model*.bin), `t5x` (legacy msgpack `checkpoint` + tensorstore zarr folders),
`t5x_orbax` (an orbax checkpoint holding t5x's {"target": params, ...}) and
`hyperprompt` (our own MODEL_DIR or converted folder).

HF folders and converted folders carry their model config (config.json,
model_config.json): `read` checks the model against it before reading a tensor.
t5x checkpoints carry none; only their tensor shapes are checked.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
from collections.abc import Callable

import jax
import numpy as np

from hyperprompt.convert import model_config
from hyperprompt.convert.hf_config import t5_config_from_hf
from hyperprompt.convert.hf_mapping import TRANSPOSE, hf_parameter_map
from hyperprompt.errors import UsageError
from hyperprompt.models.configs import T5Config
from hyperprompt.optim import flat_paths

FORMATS = ("hf", "t5x", "t5x_orbax", "hyperprompt")


@dataclasses.dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    load: Callable[[], np.ndarray]


def detect_format(path: str) -> str:
    """Guess the format of `path` from the files it holds."""
    if os.path.exists(os.path.join(path, "config.json")):
        return "hf"
    if os.path.isfile(os.path.join(path, "checkpoint")):
        return "t5x"
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return "hyperprompt"
    if os.path.exists(os.path.join(path, "_CHECKPOINT_METADATA")) or glob.glob(
            os.path.join(path, "*", "_CHECKPOINT_METADATA")):
        return "t5x_orbax"
    raise UsageError(f"cannot tell the checkpoint format of {path!r} (no config.json, t5x "
                     f"`checkpoint` file or orbax folder); pass --from one of {FORMATS}.")


def resolve_format(path: str, fmt: str) -> str:
    """`fmt`, or the detected format when it is 'auto'."""
    if not os.path.exists(path):
        raise UsageError(f"checkpoint path {path!r} does not exist.")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise UsageError(f"unknown checkpoint format {fmt!r}; use one of {FORMATS} or 'auto'.")
    return fmt


def stored_config(path: str, fmt: str) -> T5Config | None:
    """The model config the checkpoint carries (HF config.json, a converted folder's
    model_config.json); None for t5x checkpoints and runs, which carry none."""
    fmt = resolve_format(path, fmt)
    if fmt == "hf":
        return t5_config_from_hf(_hf_config_json(path), origin=os.path.join(path, "config.json"))
    if fmt == "hyperprompt":
        return model_config.load(path)
    return None


def check_config(path: str, fmt: str, config: T5Config) -> None:
    """UsageError when `config` computes another function than the checkpoint's own config."""
    fmt = resolve_format(path, fmt)
    stored = stored_config(path, fmt)
    if stored is None:
        return
    if fmt == "hyperprompt":
        fix = f"use --gin_file={os.path.join(path, model_config.GIN_FILE)}"
    elif published := model_config.published_gin_file(stored):
        fix = f"use --gin_file={published}"
    else:
        fix = (f"convert it with no model gin file (hyperprompt convert --src {path} --dst DIR "
               f"writes DIR/{model_config.GIN_FILE}) and use --gin_file=DIR/"
               f"{model_config.GIN_FILE}")
    model_config.check(stored, config, origin=path, fix=fix)


def read(path: str, fmt: str, config: T5Config) -> dict[str, Tensor]:
    """Lazy tensors of the checkpoint at `path`, keyed by unscanned parameter paths."""
    fmt = resolve_format(path, fmt)
    check_config(path, fmt, config)
    readers = {"hf": read_hf, "t5x": read_t5x_legacy, "t5x_orbax": read_t5x_orbax,
               "hyperprompt": read_hyperprompt}
    return readers[fmt](path, config)


# ---- Hugging Face ------------------------------------------------------------------------

def _hf_tensor_files(path: str) -> tuple[list[str], str]:
    for pattern, kind in (("*.safetensors", "safetensors"), ("pytorch_model*.bin", "torch")):
        files = sorted(glob.glob(os.path.join(path, pattern)))
        if files:
            return files, kind
    raise UsageError(f"{path!r} has config.json but no *.safetensors or pytorch_model*.bin.")


def _hf_state(path: str) -> dict[str, Tensor]:
    files, kind = _hf_tensor_files(path)
    tensors: dict[str, Tensor] = {}
    for file in files:
        if kind == "safetensors":
            from safetensors import safe_open

            try:
                with safe_open(file, framework="numpy") as f:
                    for name in f.keys():
                        shape = tuple(f.get_slice(name).get_shape())
                        tensors[name] = Tensor(shape, functools.partial(_safetensor, file, name))
            except Exception as e:  # truncated or not a safetensors file
                raise UsageError(f"cannot read {file} ({e}); re-download it.") from None
        else:
            state = _torch_state(file)
            for name, value in state.items():
                tensors[name] = Tensor(tuple(value.shape), functools.partial(
                    lambda v: v.float().numpy(), value))
    return tensors


def _safetensor(file: str, name: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(file, framework="numpy") as f:
        return f.get_tensor(name)


def _torch_state(file: str) -> dict:
    try:
        import torch
    except ImportError:
        raise UsageError("reading pytorch_model.bin needs torch: pip install "
                         "'hyperprompt[torch]' (or convert to safetensors).") from None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # truncated or corrupt pickle/zip
        raise UsageError(f"cannot read {file} ({str(e).splitlines()[0]}); re-download it.") \
            from None
    return state  # torch tensors, memory-mapped; converted one at a time


def _hf_config_json(path: str) -> dict:
    file = os.path.join(path, "config.json")
    if not os.path.isfile(file):
        raise UsageError(f"{path} has no config.json: not a Hugging Face save_pretrained folder.")
    try:
        with open(file) as f:
            return json.load(f)
    except ValueError as e:
        raise UsageError(f"cannot read {file} ({e}); re-download it.") from None


def read_hf(path: str, config: T5Config) -> dict[str, Tensor]:
    """A save_pretrained folder (its config.json checked by `read`)."""
    state = _hf_state(path)
    _check_shared_input_embeddings(state, path)
    out = {}
    for hf_name, ours, how in hf_parameter_map(config):
        if hf_name not in state:
            raise UsageError(f"{path} has no tensor {hf_name} (for {ours}); re-download it.")
        tensor = state[hf_name]
        if how == TRANSPOSE:
            out[ours] = Tensor(tensor.shape[::-1], functools.partial(
                lambda t: np.ascontiguousarray(t.load().T), tensor))
        else:
            out[ours] = tensor
    return out


def _check_shared_input_embeddings(state: dict[str, Tensor], path: str) -> None:
    """T5 has one input embedding; a file whose encoder/decoder copies differ is not T5."""
    for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        if name in state and "shared.weight" in state and not np.array_equal(
                state[name].load(), state["shared.weight"].load()):
            raise UsageError(f"{path}: {name} differs from shared.weight, but T5 shares one "
                             f"input embedding; re-save the model with tied input embeddings.")


# ---- t5x ---------------------------------------------------------------------------------

def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        is_spec = isinstance(value, dict) and "driver" in value
        out.update(_flatten(value, name) if isinstance(value, dict) and not is_spec
                   else {name: value})
    return out


def t5x_legacy_tree(path: str) -> dict:
    """t5x's msgpack `checkpoint` file: {"optimizer": {"target": params, "state": ...}}, its
    large arrays as tensorstore specs (small ones inline)."""
    from flax import serialization

    try:
        with open(os.path.join(path, "checkpoint"), "rb") as f:
            tree = serialization.msgpack_restore(f.read())
        tree["optimizer"]["target"]
    except Exception as e:  # truncated msgpack, or not a t5x checkpoint
        raise UsageError(f"cannot read the t5x checkpoint {path}/checkpoint ({e}); "
                         f"re-copy it.") from None
    return tree


def t5x_legacy_tensors(path: str, tree: dict) -> dict[str, Tensor]:
    """Lazy tensors of a subtree of `t5x_legacy_tree(path)`, keyed by '/'-joined paths."""
    out = {}
    for name, value in _flatten(tree).items():
        if isinstance(value, dict):
            spec = json.loads(json.dumps(value))
            folder = os.path.join(path, spec["kvstore"]["path"])
            if not os.path.isdir(folder):
                raise UsageError(f"the t5x checkpoint {path} lacks the zarr folder "
                                 f"{os.path.basename(folder)} (for {name}); re-copy it.")
            spec["kvstore"] = {"driver": "file", "path": folder}
            out[name] = Tensor(tuple(spec["metadata"]["shape"]),
                               functools.partial(_read_tensorstore, spec))
        else:
            array = np.asarray(value)
            out[name] = Tensor(array.shape, functools.partial(lambda a: a, array))
    return out


def read_t5x_legacy(path: str, config: T5Config) -> dict[str, Tensor]:
    """t5x's msgpack checkpoint: small arrays inline, large ones as tensorstore zarr specs."""
    tree = t5x_legacy_tree(path)
    return unscan_view(t5x_legacy_tensors(path, tree["optimizer"]["target"]), config)


def _read_tensorstore(spec: dict) -> np.ndarray:
    import tensorstore as ts

    try:
        return np.asarray(ts.open(spec).result().read().result())
    except Exception as e:  # missing or truncated chunk files
        raise UsageError(f"cannot read {spec['kvstore']['path']} ({str(e).splitlines()[0]}); "
                         f"re-copy the checkpoint.") from None


def orbax_tree(path: str) -> dict:
    import orbax.checkpoint as ocp

    try:  # as host numpy arrays: the saving topology may not exist here
        checkpointer = ocp.PyTreeCheckpointer()
        metadata = checkpointer.metadata(path).item_metadata.tree
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                    metadata)
        return checkpointer.restore(path, args=ocp.args.PyTreeRestore(
            restore_args=restore_args))
    except Exception as e:  # unreadable or truncated
        raise UsageError(f"cannot read the orbax checkpoint {path} ({str(e).splitlines()[0]})."
                         ) from None


def latest_orbax_step(path: str) -> str:
    if os.path.exists(os.path.join(path, "_CHECKPOINT_METADATA")):
        return path
    if not glob.glob(os.path.join(path, "*", "_CHECKPOINT_METADATA")):
        raise UsageError(f"{path} holds no orbax checkpoint (no _CHECKPOINT_METADATA).")
    steps = sorted((p for p in glob.glob(os.path.join(path, "*", "_CHECKPOINT_METADATA"))),
                   key=lambda p: int(os.path.basename(os.path.dirname(p)))
                   if os.path.basename(os.path.dirname(p)).isdigit() else -1)
    return os.path.dirname(steps[-1])


def _eager(tree: dict, config: T5Config) -> dict[str, Tensor]:
    flat = {k: np.asarray(v) for k, v in flat_paths(tree).items()}
    return unscan_view({k: Tensor(v.shape, functools.partial(lambda a: a, v))
                        for k, v in flat.items()}, config)


def read_t5x_orbax(path: str, config: T5Config) -> dict[str, Tensor]:
    """An orbax checkpoint in t5x's layout: {"target": params, "state": {...}}."""
    tree = orbax_tree(latest_orbax_step(path))
    if "target" not in tree:
        raise UsageError(f"{path} is an orbax checkpoint without t5x's 'target' tree.")
    return _eager(tree["target"], config)


def read_hyperprompt(path: str, config: T5Config) -> dict[str, Tensor]:
    """Params of the latest checkpoint of a MODEL_DIR (or converted folder)."""
    from hyperprompt import checkpoints

    directory = checkpoints.checkpoint_dir(path)
    if not os.path.isdir(directory) or not glob.glob(os.path.join(directory, "*",
                                                                 "_CHECKPOINT_METADATA")):
        raise UsageError(f"{path} has no complete checkpoint under checkpoints/.")
    step = latest_orbax_step(directory)
    item = os.path.join(step, "default")  # CheckpointManager's single-item folder
    return _eager(orbax_tree(item if os.path.isdir(item) else step)["params"], config)


# ---- layouts -----------------------------------------------------------------------------

def unscan_view(tensors: dict[str, Tensor], config: T5Config) -> dict[str, Tensor]:
    """Split scanned stacks (`encoder/encoder/...`) into `layers_i` views, lazily."""
    out = {}
    axis = config.param_scan_axis
    for name, tensor in tensors.items():
        parts = name.split("/")
        if len(parts) > 2 and parts[0] in ("encoder", "decoder") and parts[1] == parts[0]:
            depth = tensor.shape[axis]
            shape = tensor.shape[:axis] + tensor.shape[axis + 1:]
            cached = functools.lru_cache(maxsize=1)(tensor.load)
            for i in range(depth):
                key = "/".join([parts[0], f"layers_{i}", *parts[2:]])
                out[key] = Tensor(shape, functools.partial(
                    lambda load, i: np.take(load(), i, axis=axis), cached, i))
        else:
            out[name] = tensor
    return out
