"""Every T5 size: parameter counts against the published totals, gin files, t5x names.

Counts use `jax.eval_shape`, so even the 11B model allocates nothing.
"""

import dataclasses
import json
from pathlib import Path

import flax.linen as nn
import gin
import jax
import msgpack
import pytest
from flax import traverse_util

from hyperprompt import cli
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models import configs
from hyperprompt.models.t5 import Transformer

# Published totals: v1.0 with tied logits, v1.1 with an untied `logits_dense`.
PUBLISHED_PARAMS = {
    "t5_small": 60_506_624,
    "t5_base": 222_903_552,
    "t5_large": 737_668_096,
    "t5_3B": 2_851_598_336,
    "t5_11B": 11_307_321_344,
    "t5_1_1_small": 76_961_152,
    "t5_1_1_base": 247_577_856,
    "t5_1_1_large": 783_150_080,
    "t5_1_1_xl": 2_849_757_184,
    "t5_1_1_xxl": 11_135_332_352,
}

DIMENSION_FIELDS = ("vocab_size", "emb_dim", "num_heads", "num_encoder_layers",
                    "num_decoder_layers", "head_dim", "mlp_dim", "mlp_activations",
                    "logits_via_embedding")


def param_shapes(cfg: configs.T5Config) -> dict[str, tuple[int, ...]]:
    """'/'-joined parameter path -> shape, from an abstract (unallocated) init."""
    model = EncoderDecoderModel(Transformer(cfg))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), 8, 8))
    flat = traverse_util.flatten_dict(nn.unbox(variables["params"]), sep="/")
    return {path: tuple(leaf.shape) for path, leaf in flat.items()}


def count(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes.values():
        size = 1
        for dim in shape:
            size *= dim
        total += size
    return total


def closed_form_count(cfg: configs.T5Config) -> int:
    """T5 from the paper, not the code: bias-free projections, scale-only layer norms."""
    d, vocab = cfg.emb_dim, cfg.vocab_size
    inner = cfg.num_heads * cfg.head_dim
    attention = 4 * d * inner  # query, key, value: d -> heads*head_dim; out: back to d
    # v1.0: wi, wo; v1.1 gated-GELU: wi_0, wi_1, wo.
    mlp = (len(cfg.mlp_activations) + 1) * d * cfg.mlp_dim
    relpos = cfg.num_heads * cfg.relpos_num_buckets  # one table per stack, shared by layers
    encoder_layer = attention + mlp + 2 * d  # self-attention, FFN, 2 norms
    decoder_layer = 2 * attention + mlp + 3 * d  # self- and cross-attention, FFN, 3 norms
    encoder = cfg.num_encoder_layers * encoder_layer + relpos + d  # + final norm
    decoder = cfg.num_decoder_layers * decoder_layer + relpos + d
    logits = 0 if cfg.logits_via_embedding else d * vocab
    return vocab * d + encoder + decoder + logits


@pytest.mark.parametrize("name", sorted(configs.CONFIGS))
def test_param_count_matches_published(name):
    assert count(param_shapes(configs.CONFIGS[name])) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(configs.CONFIGS))
def test_closed_form_count_matches_published(name):
    assert closed_form_count(configs.CONFIGS[name]) == PUBLISHED_PARAMS[name]


def test_scan_layers_keeps_param_count():
    cfg = configs.CONFIGS["t5_1_1_small"]
    unrolled = count(param_shapes(dataclasses.replace(cfg, scan_layers=False)))
    scanned = count(param_shapes(dataclasses.replace(cfg, scan_layers=True)))
    assert scanned == unrolled == PUBLISHED_PARAMS["t5_1_1_small"]


def test_configs_cover_published_sizes():
    assert set(configs.CONFIGS) == set(PUBLISHED_PARAMS)


@pytest.fixture
def clean_gin():
    """Empty gin config before and after (pytest.ini's importlib mode keeps sys.path clean)."""
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.parametrize("name", sorted(configs.CONFIGS))
def test_gin_file_matches_config(name, clean_gin):
    gin.add_config_file_search_path(cli.gin_root())
    gin.parse_config_files_and_bindings([f"models/{name}.gin"], [])
    expected = {f: getattr(configs.CONFIGS[name], f) for f in DIMENSION_FIELDS}
    parsed = gin.get_configurable(configs.T5Config)()
    assert {f: getattr(parsed, f) for f in DIMENSION_FIELDS} == expected
    # The same config reaches the network through MODEL.
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    assert isinstance(model, EncoderDecoderModel)
    assert model.module.config == parsed


def _t5x_shapes(checkpoint_dir: Path) -> dict[str, tuple[int, ...]]:
    """Parameter path -> shape from a legacy t5x checkpoint, without t5x or tensorstore.

    Small arrays are inline: flax's msgpack ext type 1 holding (shape, dtype, bytes). Larger
    ones are tensorstore specs pointing at a zarr folder whose `.zarray` holds the shape.
    """

    def ext_hook(code, data):
        assert code == 1, f"unexpected msgpack ext type {code}"
        shape, _dtype, _buffer = msgpack.unpackb(data)
        return tuple(shape)

    with open(checkpoint_dir / "checkpoint", "rb") as f:
        state = msgpack.unpackb(f.read(), ext_hook=ext_hook, strict_map_key=False)
    shapes = {}

    def walk(node, path):
        if isinstance(node, tuple):
            shapes["/".join(path)] = node
        elif "driver" in node and "kvstore" in node:
            zarray = checkpoint_dir / node["kvstore"]["path"] / ".zarray"
            shapes["/".join(path)] = tuple(json.loads(zarray.read_text())["shape"])
        else:
            for key, child in node.items():
                walk(child, path + [key])

    walk(state["optimizer"]["target"], [])
    return shapes


def test_param_names_and_shapes_match_t5x_checkpoint(t5x_checkpoint):
    expected = _t5x_shapes(Path(t5x_checkpoint))
    cfg = configs.T5Config(vocab_size=32128, emb_dim=4, num_heads=2, head_dim=2, mlp_dim=8,
                           num_encoder_layers=2, num_decoder_layers=2,
                           mlp_activations=("gelu", "linear"), logits_via_embedding=False,
                           relpos_num_buckets=4, relpos_max_distance=8)
    assert len(expected) == 52
    assert param_shapes(cfg) == expected
