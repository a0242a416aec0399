"""T5 configurations: v1.0 and v1.1 at every published size, plus tiny for tests.

Field names follow t5x's `network.T5Config` so gin bindings read the same.
v1.0 dims: Raffel et al. 2020 (JMLR), Table 14. v1.1 dims: the public T5 1.1
gin files (small/base/large/xl/xxl).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Dimensions and switches of a T5 encoder-decoder."""

    vocab_size: int = 32128
    emb_dim: int = 512
    num_heads: int = 6
    num_encoder_layers: int = 8
    num_decoder_layers: int = 8
    head_dim: int = 64
    mlp_dim: int = 1024
    # ("gelu", "linear") = v1.1 gated-GELU; ("relu",) = v1.0.
    mlp_activations: Sequence[str] = ("gelu", "linear")
    dropout_rate: float = 0.0
    # v1.0 ties the output layer to the embedding (logits scaled by emb_dim**-0.5).
    logits_via_embedding: bool = False
    # Activation dtype; parameters are always float32.
    dtype: str = "float32"
    relpos_num_buckets: int = 32
    relpos_max_distance: int = 128
    # nn.scan over layers (compile time flat in depth) and its parameter axis (t5x uses 1).
    scan_layers: bool = False
    param_scan_axis: int = 1
    # Rematerialisation of each layer: "none", "full", or "dots" (save matmul outputs).
    remat_policy: str = "none"

    def __post_init__(self):
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(
                f"remat_policy={self.remat_policy!r} is unknown; use one of {REMAT_POLICIES}."
            )


REMAT_POLICIES = ("none", "full", "dots")

# The fields that change what a trained network computes: a checkpoint fits a model only
# if these agree (the others are run settings: dropout, dtype, layout, remat).
FUNCTION_FIELDS = ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim",
                   "num_encoder_layers", "num_decoder_layers", "mlp_activations",
                   "logits_via_embedding", "relpos_num_buckets", "relpos_max_distance")

_V1_0 = dict(mlp_activations=("relu",), logits_via_embedding=True)
_V1_1 = dict(mlp_activations=("gelu", "linear"), logits_via_embedding=False)


def _v1_0(d, heads, layers, mlp, head_dim=64):
    return T5Config(
        emb_dim=d, num_heads=heads, num_encoder_layers=layers, num_decoder_layers=layers,
        head_dim=head_dim, mlp_dim=mlp, **_V1_0,
    )


def _v1_1(d, heads, layers, mlp):
    return T5Config(
        emb_dim=d, num_heads=heads, num_encoder_layers=layers, num_decoder_layers=layers,
        head_dim=64, mlp_dim=mlp, **_V1_1,
    )


# name -> config; the names are those of the gin files in gin/models/.
CONFIGS: dict[str, T5Config] = {
    "t5_small": _v1_0(512, 8, 6, 2048),
    "t5_base": _v1_0(768, 12, 12, 3072),
    "t5_large": _v1_0(1024, 16, 24, 4096),
    "t5_3B": _v1_0(1024, 32, 24, 16384, head_dim=128),
    "t5_11B": _v1_0(1024, 128, 24, 65536, head_dim=128),
    "t5_1_1_small": _v1_1(512, 6, 8, 1024),
    "t5_1_1_base": _v1_1(768, 12, 12, 2048),
    "t5_1_1_large": _v1_1(1024, 16, 24, 2816),
    "t5_1_1_xl": _v1_1(2048, 32, 24, 5120),
    "t5_1_1_xxl": _v1_1(4096, 64, 24, 10240),
}
