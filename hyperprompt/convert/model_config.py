"""The model config a converted checkpoint carries, and the check that a model fits it.

`hyperprompt convert` writes two files beside `checkpoints/`:
- `model_config.json`: the T5Config fields that change the function
  (`configs.FUNCTION_FIELDS`); loaders compare the gin model against it;
- `model.gin`: the same fields as a model gin file that composes like
  `models/t5_1_1_base.gin` (`--gin_file=<dst>/model.gin --gin_file=methods/...`),
  so a size with no published gin file needs no `--gin.T5Config.*` overrides.
"""

from __future__ import annotations

import json
import os

from hyperprompt.errors import UsageError
from hyperprompt.files import atomic_write, write_json
from hyperprompt.models.configs import CONFIGS, FUNCTION_FIELDS, T5Config

CONFIG_FILE = "model_config.json"
GIN_FILE = "model.gin"


def function_fields(config: T5Config) -> dict:
    """The fields of `config` that a checkpoint must agree with (tuples, not lists)."""
    values = {name: getattr(config, name) for name in FUNCTION_FIELDS}
    values["mlp_activations"] = tuple(values["mlp_activations"])
    return values


def gin_text(config: T5Config, source: str) -> str:
    """A model gin file binding every function field of `config`."""
    version = "T5 v1.0 style" if config.logits_via_embedding else "T5 v1.1 style"
    bindings = "".join(f"  {name} = {value!r}\n"
                       for name, value in function_fields(config).items())
    return (f"# {version} model of the checkpoint converted from {source}.\n"
            "# Use it where a models/*.gin file goes: --gin_file=<this file> "
            "--gin_file=methods/...\n"
            "from __gin__ import dynamic_registration\n"
            "from hyperprompt import model as hp_model\n"
            "from hyperprompt.models import configs\n"
            "from hyperprompt.models import t5\n\n"
            "include 'models/_encoder_decoder.gin'\n\n"
            "# Devices on the model axis (size files own it): the published sizes use 1 up to\n"
            "# ~1B parameters, 4 at ~3B, 8 at ~11B.\n"
            "MODEL_PARALLEL = 1\n\n"
            f"configs.T5Config:\n{bindings}")


def save(directory: str, config: T5Config, source: str) -> None:
    """Write model_config.json and model.gin into `directory`."""
    write_json(os.path.join(directory, CONFIG_FILE), function_fields(config))
    with atomic_write(os.path.join(directory, GIN_FILE)) as f:
        f.write(gin_text(config, source))


def load(directory: str) -> T5Config | None:
    """The config stored in `directory`, or None when it stores none."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            stored = json.load(f)
        values = {name: stored[name] for name in FUNCTION_FIELDS}
    except (ValueError, KeyError) as e:
        raise UsageError(f"{path} is unreadable or incomplete ({e!r}); convert the "
                         f"checkpoint again.") from None
    values["mlp_activations"] = tuple(values["mlp_activations"])
    return T5Config(**values)


def published_gin_file(config: T5Config) -> str | None:
    """The models/*.gin file whose network equals `config`'s, if one ships."""
    for name, published in CONFIGS.items():
        if function_fields(published) == function_fields(config):
            return f"models/{name}.gin"
    return None


def check(stored: T5Config, config: T5Config, origin: str, fix: str) -> None:
    """UsageError naming every function field where `config` differs from the checkpoint's."""
    ours, theirs = function_fields(config), function_fields(stored)
    differ = [f"{name}={theirs[name]!r} in the checkpoint vs {ours[name]!r} in the model gin "
              f"file" for name in FUNCTION_FIELDS if ours[name] != theirs[name]]
    if differ:
        raise UsageError(f"{origin} does not match the model gin file: {'; '.join(differ)}; "
                         f"{fix}.")
