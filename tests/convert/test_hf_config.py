"""config.json -> T5Config against transformers, and the one-line errors when a checkpoint
and the model gin file disagree on anything that changes the function."""

import json
import os

import jax
import numpy as np
import pytest
import torch

from hyperprompt import cli, pretrained

# Off every default: d_kv != d_model / num_heads, 16 buckets, max distance 40,
# decoder depth != encoder depth; v1.1 with its own lm_head.
HF_FIELDS = {
    "v1_0": dict(vocab_size=384, d_model=24, num_heads=3, d_kv=4, d_ff=40, num_layers=2,
                 num_decoder_layers=3, relative_attention_num_buckets=16,
                 relative_attention_max_distance=40, feed_forward_proj="relu",
                 tie_word_embeddings=True),
    "v1_1": dict(vocab_size=384, d_model=32, num_heads=2, d_kv=12, d_ff=48, num_layers=2,
                 num_decoder_layers=1, relative_attention_num_buckets=16,
                 relative_attention_max_distance=40, feed_forward_proj="gated-gelu",
                 tie_word_embeddings=False),
}
# The v1.1 checkpoint in our field names, written out by hand.
V1_1 = dict(vocab_size=384, emb_dim=32, num_heads=2, head_dim=12, mlp_dim=48,
            num_encoder_layers=2, num_decoder_layers=1, mlp_activations=("gelu", "linear"),
            logits_via_embedding=False, relpos_num_buckets=16, relpos_max_distance=40)

# Lengths past max_exact so that the log-spaced buckets (and max distance 40) matter.
RNG = np.random.RandomState(0)
ENC = RNG.randint(2, 384, (2, 32))
ENC[1, 20:] = 0
DEC = RNG.randint(2, 384, (2, 24))
DEC[:, 0] = 0


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory, save_hf_t5):
    out = {}
    for name, fields in HF_FIELDS.items():
        path = tmp_path_factory.mktemp(name)
        out[name] = (path, save_hf_t5(path, **fields))
    return out


@pytest.mark.parametrize("version", sorted(HF_FIELDS))
def test_config_from_hf_gives_the_logits_of_transformers(hf_dirs, version):
    path, hf = hf_dirs[version]
    model, params = pretrained.load(str(path))  # the config from config.json
    batch = {"encoder_input_tokens": ENC, "decoder_input_tokens": DEC,
             "decoder_target_tokens": np.ones_like(DEC)}  # every decoder position valid
    ours = np.asarray(jax.jit(model.logits)(params, batch))
    with torch.no_grad():
        want = hf(input_ids=torch.tensor(ENC), attention_mask=torch.tensor(ENC > 0),
                  decoder_input_ids=torch.tensor(DEC)).logits.numpy()
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)


def _convert(src, dst, *flags):
    return cli.main(["convert", "--src", str(src), "--dst", str(dst), *flags])


def _one_line_error(capsys, code, dst) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    assert not os.path.exists(dst)
    return err[0]


@pytest.mark.parametrize("field,value", [
    ("relpos_max_distance", 128), ("relpos_num_buckets", 32),
    ("logits_via_embedding", True),  # would drop the checkpoint's lm_head
    ("mlp_activations", ("relu",)), ("vocab_size", 512), ("emb_dim", 64), ("num_heads", 4),
    ("head_dim", 16), ("mlp_dim", 64), ("num_encoder_layers", 3), ("num_decoder_layers", 2),
])
def test_each_function_field_mismatch_is_a_one_line_error(hf_dirs, tmp_path, capsys, field,
                                                          value):
    bindings = [f"--gin.configs.T5Config.{name}={v!r}"
                for name, v in {**V1_1, field: value}.items()]
    dst = tmp_path / "out"
    code = _convert(hf_dirs["v1_1"][0], dst, "--gin_file=models/t5_1_1_tiny.gin", *bindings)
    line = _one_line_error(capsys, code, dst)
    assert f"{field}={V1_1[field]!r} in the checkpoint vs {value!r} in the model gin file" in line
    assert "convert it with no model gin file" in line and "--gin_file=DIR/model.gin" in line


@pytest.mark.parametrize("change,message", [
    ({"layer_norm_epsilon": 1e-5}, "layer_norm_epsilon=1e-05 but the backbone's layer norm "
                                   "uses 1e-06"),
    ({"feed_forward_proj": "gated-silu"}, "feed_forward_proj='gated-silu' is an FFN the "
                                          "backbone lacks; supported: gated-gelu, "),
    ({"feed_forward_proj": "gelu"}, "feed_forward_proj='gelu' is an FFN"),  # exact-erf GELU
    ({"scale_decoder_outputs": True}, "scale_decoder_outputs=True with tie_word_embeddings="
                                      "False"),
    ({"model_type": "umt5"}, "model_type='umt5' is another network"),
])
def test_a_checkpoint_the_backbone_cannot_run_is_a_one_line_error(hf_dirs, tmp_path, capsys,
                                                                  change, message):
    src = tmp_path / "hf"
    src.mkdir()
    original = hf_dirs["v1_1"][0]
    os.symlink(original / "model.safetensors", src / "model.safetensors")
    with open(original / "config.json") as f:
        config = {**json.load(f), **change}
    (src / "config.json").write_text(json.dumps(config))
    dst = tmp_path / "out"
    assert message in _one_line_error(capsys, _convert(src, dst), dst)
