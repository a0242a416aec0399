"""`hyperprompt convert` and INITIAL_CHECKPOINT_PATH with a Hugging Face folder."""

import importlib.util
import os

import flax.linen as nn
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
QUICK = ["--gin_file=experiments/quickstart.gin"]


def _hf_model(config):
    path = os.path.join(os.path.dirname(__file__), "test_hf.py")
    spec = importlib.util.spec_from_file_location("hf_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.hf_model(config)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    _hf_model(TINY).save_pretrained(path)
    return path


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
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "does not match the model gin file: vocab_size=384 vs vocab_size=32128" in err[0]
    assert not dst.exists()


def test_initial_checkpoint_path_accepts_a_hf_folder(hf_dir, tmp_path):
    model_dir = tmp_path / "run"
    assert cli.main(["train", *QUICK, f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=1",
                     "--gin.BATCH_SIZE=8", "--gin.train_lib.train.eval_examples=0",
                     "--gin.LEARNING_RATE=0.0",  # so the saved step-1 params are the loaded ones
                     f"--gin.INITIAL_CHECKPOINT_PATH='{hf_dir}'"]) == 0
    model = EncoderDecoderModel(Transformer(TINY))
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        step, params = restore_trained(model, str(model_dir),
                                       {"inputs": 24, "targets": 12}, mesh)
    hf = load_file(str(hf_dir / "model.safetensors"))
    assert step == 1
    np.testing.assert_array_equal(params["token_embedder"]["embedding"], hf["shared.weight"])
    np.testing.assert_array_equal(params["decoder"]["layers_1"]["mlp"]["wo"]["kernel"],
                                  hf["decoder.block.1.layer.2.DenseReluDense.wo.weight"].T)
