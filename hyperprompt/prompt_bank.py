"""A bank of named, trained soft prompts (and other small method weights) on disk.

An entry NAME in a bank folder is two files: `NAME.npz` (its arrays) and `NAME.json`
(its metadata). A prompt entry holds one array, `prompt` [length, d_model], and says
where it came from:

    {"kind": "prompt", "task": "glue_mnli", "backbone": "runs/t5_1_1_base",
     "prompt_length": 100, "d_model": 768, "step": 12000, "model_dir": "runs/pt_mnli"}

ATTEMPT reads its source prompts (and a pretrained attention module, kind
"attention") from a bank; `hyperprompt bank` exports them from trained runs.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from hyperprompt.errors import UsageError
from hyperprompt.files import atomic_write

PROMPT = "prompt"  # a prompt entry's kind and its array's name
ATTENTION = "attention"  # an attention module's kind (ATTEMPT's G)


def _paths(bank_dir: str, name: str) -> tuple[str, str]:
    return os.path.join(bank_dir, f"{name}.npz"), os.path.join(bank_dir, f"{name}.json")


def save(bank_dir: str, name: str, arrays: Mapping[str, np.ndarray],
         metadata: Mapping[str, Any]) -> str:
    """Write entry `name` (replacing one of that name); returns its .npz path."""
    os.makedirs(bank_dir, exist_ok=True)
    npz, meta = _paths(bank_dir, name)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    with atomic_write(npz, "wb") as f:
        f.write(buffer.getvalue())
    with atomic_write(meta) as f:
        json.dump(dict(metadata), f, indent=1, sort_keys=True)
    return npz


def names(bank_dir: str) -> list[str]:
    """The entries of a bank folder (sorted)."""
    if not os.path.isdir(bank_dir):
        return []
    return sorted(f[:-5] for f in os.listdir(bank_dir) if f.endswith(".json")
                  and os.path.exists(os.path.join(bank_dir, f[:-5] + ".npz")))


def load(bank_dir: str, name: str, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, metadata) of entry `name`, which must be of `kind`."""
    npz, meta = _paths(bank_dir, name)
    if not (os.path.exists(npz) and os.path.exists(meta)):
        have = ", ".join(names(bank_dir)) or "none"
        raise UsageError(f"prompt bank {bank_dir!r} has no entry {name!r} (it has: {have}); "
                         f"export it with `hyperprompt bank` from the run that trained it.")
    with open(meta) as f:
        metadata = json.load(f)
    if metadata.get("kind") != kind:
        raise UsageError(f"prompt bank entry {name!r} in {bank_dir!r} is a "
                         f"{metadata.get('kind')!r}, not a {kind!r}; name a {kind} entry.")
    with np.load(npz) as stored:
        return {k: stored[k] for k in stored.files}, metadata


def load_prompt(bank_dir: str, name: str, prompt_length: int, d_model: int) -> np.ndarray:
    """Prompt `name` [prompt_length, d_model]; another length or d_model is a one-line error."""
    arrays, metadata = load(bank_dir, name, PROMPT)
    prompt = arrays[PROMPT]
    if prompt.shape[1] != d_model:
        raise UsageError(f"prompt {name!r} in {bank_dir!r} has d_model {prompt.shape[1]} "
                         f"(backbone {metadata.get('backbone')!r}) but this model's is "
                         f"{d_model}; use prompts trained on a backbone of this size.")
    if prompt.shape[0] != prompt_length:
        raise UsageError(f"prompt {name!r} in {bank_dir!r} is {prompt.shape[0]} tokens long but "
                         f"the method's prompts are {prompt_length}; set the prompt length to "
                         f"{prompt.shape[0]} or use prompts of length {prompt_length}.")
    return prompt
