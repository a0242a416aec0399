"""t5x checkpoints: the legacy fixture written by t5x itself, and t5x's orbax layout."""

import dataclasses
import gzip
import json
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import orbax.checkpoint as ocp
import pytest

from hyperprompt.convert import sources
from hyperprompt.convert.restore import load_pretrained
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layout import scan_params
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import param_path

# The fixture's dims (its README): T5 1.1, emb 4, 2 heads of 2, mlp 8, 2+2 layers.
FIXTURE_CONFIG = T5Config(vocab_size=32128, emb_dim=4, num_heads=2, head_dim=2, mlp_dim=8,
                          num_encoder_layers=2, num_decoder_layers=2, relpos_num_buckets=4,
                          relpos_max_distance=8)


def raw_fixture_arrays(fixture: str) -> dict[str, np.ndarray]:
    """Every array under optimizer/target, read without flax or tensorstore."""
    with open(os.path.join(fixture, "checkpoint"), "rb") as f:
        tree = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
    out = {}

    def walk(node, prefix):
        if isinstance(node, msgpack.ExtType):  # flax: (shape, dtype name, raw bytes)
            shape, dtype, data = msgpack.unpackb(node.data, raw=False)
            out[prefix] = np.frombuffer(data, dtype=dtype).reshape(shape)
        elif "driver" in node:  # a zarr v2 folder of gzip chunks
            out[prefix] = read_zarr(os.path.join(fixture, node["kvstore"]["path"]))
        else:
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else key)

    walk(tree["optimizer"]["target"], "")
    return out


def read_zarr(folder: str) -> np.ndarray:
    with open(os.path.join(folder, ".zarray")) as f:
        meta = json.load(f)
    assert meta["compressor"]["id"] == "gzip" and meta["order"] == "C"
    shape, chunks = meta["shape"], meta["chunks"]
    full = np.zeros(shape, meta["dtype"])
    grid = [range(-(-s // c)) for s, c in zip(shape, chunks, strict=True)]
    for index in np.ndindex(*[len(g) for g in grid]):
        chunk_path = os.path.join(folder, ".".join(map(str, index)))
        chunk = np.frombuffer(gzip.decompress(open(chunk_path, "rb").read()), meta["dtype"])
        chunk = chunk.reshape(chunks)
        window = tuple(slice(i * c, min((i + 1) * c, s))
                       for i, c, s in zip(index, chunks, shape, strict=True))
        full[window] = chunk[tuple(slice(0, w.stop - w.start) for w in window)]
    return full


def target(config):
    model = EncoderDecoderModel(Transformer(config))
    return model, nn.unbox(model.init(jax.random.PRNGKey(0), 6, 4)["params"])


def test_legacy_fixture_restores_every_array_exactly_and_runs(t5x_checkpoint):
    raw = raw_fixture_arrays(t5x_checkpoint)
    model, empty = target(FIXTURE_CONFIG)
    params = load_pretrained(t5x_checkpoint, "t5x", FIXTURE_CONFIG, empty)
    restored = {param_path(p): np.asarray(v)
                for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert set(restored) == set(raw) and len(raw) == 52
    for name, value in raw.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)
    logits = model.module.apply({"params": params}, jnp.array([[5, 6, 1]]),
                                jnp.array([[0, 7]]), enable_dropout=False)
    assert logits.shape == (1, 2, 32128) and bool(jnp.all(jnp.isfinite(logits)))


def test_legacy_fixture_into_a_scanned_model(t5x_checkpoint):
    scanned = dataclasses.replace(FIXTURE_CONFIG, scan_layers=True)
    _, unscanned_params = target(FIXTURE_CONFIG)
    plain = load_pretrained(t5x_checkpoint, "t5x", FIXTURE_CONFIG, unscanned_params)
    _, scanned_target = target(scanned)
    got = load_pretrained(t5x_checkpoint, "t5x", scanned, scanned_target)
    want = scan_params(plain, scanned)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_zarr_folder_and_truncated_msgpack(tmp_path, t5x_checkpoint):
    copy = tmp_path / "checkpoint_3"
    shutil.copytree(t5x_checkpoint, copy)
    os.chmod(copy, 0o755)
    shutil.rmtree(copy / "target.encoder.layers_1.mlp.wo.kernel")
    _, empty = target(FIXTURE_CONFIG)
    with pytest.raises(UsageError, match="lacks the zarr folder target.encoder.layers_1.mlp.wo"):
        load_pretrained(str(copy), "t5x", FIXTURE_CONFIG, empty)
    checkpoint = copy / "checkpoint"
    os.chmod(checkpoint, 0o644)
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    with pytest.raises(UsageError, match="cannot read the t5x checkpoint"):
        load_pretrained(str(copy), "t5x", FIXTURE_CONFIG, empty)


def test_t5x_orbax_layout_round_trip(tmp_path):
    """t5x's orbax checkpoints hold {'target': params, 'state': {'step': ...}}."""
    config = T5Config(vocab_size=64, emb_dim=8, num_heads=2, head_dim=4, mlp_dim=16,
                      num_encoder_layers=2, num_decoder_layers=2)
    _, params = target(config)
    scanned = dataclasses.replace(config, scan_layers=True)
    tree = {"target": jax.tree.map(np.asarray, scan_params(params, scanned)),
            "state": {"step": np.array(3)}}
    ocp.PyTreeCheckpointer().save(tmp_path / "checkpoint_3", tree)
    assert sources.detect_format(str(tmp_path)) == "t5x_orbax"
    _, fresh = target(config)
    got = load_pretrained(str(tmp_path), "auto", config, fresh)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)  # a scanned t5x file into an unrolled model
    with pytest.raises(UsageError, match=r"stores decoder/layers_0/mlp/wi_0/kernel as \[8, 16\] "
                                         r"but the model has \[8, 32\]"):
        _, other = target(dataclasses.replace(config, mlp_dim=32))
        load_pretrained(str(tmp_path), "auto", dataclasses.replace(config, mlp_dim=32), other)
