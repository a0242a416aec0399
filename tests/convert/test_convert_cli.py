"""`hyperprompt convert` (gin model or the checkpoint's own config, hub ids) and training
from a converted folder of a size that has no gin file."""

import flax.linen as nn
import huggingface_hub
import huggingface_hub.constants
import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

from hyperprompt import cli, partitioning
from hyperprompt.convert import sources
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.state import restore_trained

# gin/models/t5_1_1_tiny.gin, the quickstart model.
TINY = T5Config(vocab_size=384, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256,
                num_encoder_layers=2, num_decoder_layers=2)
TINY_HF = dict(vocab_size=384, d_model=128, num_heads=4, d_kv=32, d_ff=256, num_layers=2,
               feed_forward_proj="gated-gelu", tie_word_embeddings=False)
QUICK = ["--gin_file=experiments/quickstart.gin"]
# A size no gin file has (byte vocabulary, so it trains on the synthetic tasks).
CUSTOM_HF = dict(vocab_size=384, d_model=32, num_heads=2, d_kv=12, d_ff=48, num_layers=2,
                 num_decoder_layers=1, relative_attention_num_buckets=16,
                 relative_attention_max_distance=40, feed_forward_proj="gated-gelu",
                 tie_word_embeddings=False)
CUSTOM = T5Config(vocab_size=384, emb_dim=32, num_heads=2, head_dim=12, mlp_dim=48,
                  num_encoder_layers=2, num_decoder_layers=1, relpos_num_buckets=16,
                  relpos_max_distance=40)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, save_hf_t5):
    path = tmp_path_factory.mktemp("hf")
    save_hf_t5(path, **TINY_HF)
    return path


@pytest.fixture(scope="module")
def from_hub(tmp_path_factory, save_hf_t5):
    """`convert --src acme/t5-custom` with no model gin file, snapshot_download faked."""
    snapshot = tmp_path_factory.mktemp("snapshot")
    save_hf_t5(snapshot, **CUSTOM_HF)
    calls = []

    def snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        return str(snapshot)

    dst = tmp_path_factory.mktemp("converted") / "t5_custom"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
        code = cli.main(["convert", "--src", "acme/t5-custom", "--dst", str(dst)])
    return code, calls, snapshot, dst


def _one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    return err[0]


def test_convert_writes_exact_tensors(hf_dir, tmp_path, capsys):
    dst = tmp_path / "converted"
    assert cli.main(["convert", "--from", "hf", "--src", str(hf_dir), "--dst", str(dst),
                     "--gin_file=models/t5_1_1_tiny.gin"]) == 0
    converted = sources.read(str(dst), "auto", TINY)
    hf = load_file(str(hf_dir / "model.safetensors"))
    np.testing.assert_array_equal(converted["token_embedder/embedding"].load(),
                                  hf["shared.weight"])
    np.testing.assert_array_equal(converted["decoder/logits_dense/kernel"].load(),
                                  hf["lm_head.weight"].T)
    np.testing.assert_array_equal(
        converted["encoder/layers_1/attention/query/kernel"].load(),
        hf["encoder.block.1.layer.0.SelfAttention.q.weight"].T)
    capsys.readouterr()
    assert cli.main(["convert", "--src", str(hf_dir), "--dst", str(dst),
                     "--gin_file=models/t5_1_1_tiny.gin"]) == cli.EXIT_USAGE
    assert "already holds a checkpoint; choose an empty --dst" in capsys.readouterr().err


def test_convert_with_the_wrong_size_writes_nothing(hf_dir, tmp_path, capsys):
    dst = tmp_path / "converted"
    code = cli.main(["convert", "--src", str(hf_dir), "--dst", str(dst),
                     "--gin_file=models/t5_1_1_small.gin"])
    line = _one_line_error(capsys, code)
    assert "does not match the model gin file: vocab_size=384 in the checkpoint vs 32128" in line
    assert not dst.exists()


def test_a_hub_id_is_downloaded_then_read(from_hub):
    code, calls, snapshot, dst = from_hub
    assert code == 0 and calls == [("acme/t5-custom", ["config.json", "*.safetensors"])]
    converted = sources.read(str(dst), "auto", CUSTOM)
    hf = load_file(str(snapshot / "model.safetensors"))
    np.testing.assert_array_equal(converted["decoder/relpos_bias/rel_embedding"].load(),
                                  hf["decoder.block.0.layer.0.SelfAttention."
                                     "relative_attention_bias.weight"].T)
    np.testing.assert_array_equal(converted["decoder/logits_dense/kernel"].load(),
                                  hf["lm_head.weight"].T)


def _train_flags(model_gin, model_dir, initial):
    return ["train", f"--gin_file={model_gin}", "--gin_file=methods/vanilla.gin",
            "--gin_file=runs/train.gin", "--gin.MIXTURE_OR_TASK_NAME='synthetic_mtl'",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 24, 'targets': 12}",
            f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=1", "--gin.BATCH_SIZE=8",
            "--gin.train_lib.train.eval_examples=0",
            "--gin.LEARNING_RATE=0.0",  # so the saved step-1 params are the loaded ones
            f"--gin.INITIAL_CHECKPOINT_PATH='{initial}'"]


def test_train_from_a_converted_size_with_its_model_gin(from_hub, tmp_path):
    _, _, snapshot, dst = from_hub
    model_dir = tmp_path / "run"
    assert cli.main(_train_flags(dst / "model.gin", model_dir, dst)) == 0
    model = EncoderDecoderModel(Transformer(CUSTOM))
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        step, params = restore_trained(model, str(model_dir),
                                       {"inputs": 24, "targets": 12}, mesh)
    hf = load_file(str(snapshot / "model.safetensors"))
    assert step == 1
    np.testing.assert_array_equal(params["token_embedder"]["embedding"], hf["shared.weight"])
    np.testing.assert_array_equal(params["encoder"]["relpos_bias"]["rel_embedding"],
                                  hf["encoder.block.0.layer.0.SelfAttention."
                                     "relative_attention_bias.weight"].T)
    np.testing.assert_array_equal(params["decoder"]["layers_0"]["mlp"]["wo"]["kernel"],
                                  hf["decoder.block.0.layer.2.DenseReluDense.wo.weight"].T)


def test_a_mismatched_model_gin_file_is_rejected(from_hub, tmp_path, capsys):
    _, _, _, dst = from_hub
    model_dir = tmp_path / "run"
    line = _one_line_error(capsys, cli.main(_train_flags("models/t5_1_1_tiny.gin", model_dir,
                                                         dst)))
    assert "emb_dim=32 in the checkpoint vs 128 in the model gin file" in line
    assert f"use --gin_file={dst / 'model.gin'}" in line
    assert not model_dir.exists()


def test_an_unreachable_hub_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    dst = tmp_path / "converted"
    line = _one_line_error(capsys, cli.main(["convert", "--src", "google/t5-v1_1-base",
                                             "--dst", str(dst)]))
    assert "cannot download google/t5-v1_1-base from the Hugging Face hub" in line
    assert "pass it as --src" in line and not dst.exists()
