"""Hugging Face hub ids (`google/t5-v1_1-base`) as checkpoint sources.

A source that is not a local path and reads `owner/name` is downloaded with
`huggingface_hub.snapshot_download` into the HF cache (`HF_HOME`; offline with
`HF_HUB_OFFLINE=1` it is read from there): config.json and the weights only,
safetensors when the repository has them, else pytorch_model*.bin.
"""

from __future__ import annotations

import glob
import os
import re

from hyperprompt.errors import UsageError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def is_hub_id(src: str) -> bool:
    """True for `owner/name` that is no local path (nor under a local folder `owner`)."""
    return (HUB_ID.fullmatch(src) is not None and not os.path.exists(src)
            and not os.path.isdir(src.split("/")[0]))


def local_path(src: str, argument: str = "--src") -> str:
    """`src` itself, or the local snapshot folder of the hub id `src`."""
    if not is_hub_id(src):
        return src
    from huggingface_hub import snapshot_download

    try:
        for pattern in WEIGHT_PATTERNS:
            folder = snapshot_download(src, allow_patterns=["config.json", pattern])
            if glob.glob(os.path.join(folder, pattern)):
                return folder
    except OSError as e:  # offline, unknown or gated repository, HTTP errors
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot download {src} from the Hugging Face hub ({cause}), and it "
                         f"is no local path; download it elsewhere with `hf download {src} "
                         f"--include config.json --include '*.safetensors' --local-dir "
                         f"{src.split('/')[1]}`, copy that folder here and pass it as "
                         f"{argument}.") from None
    raise UsageError(f"the Hugging Face repository {src} has no *.safetensors or "
                     f"pytorch_model*.bin weights; pass a T5 checkpoint.")
