"""Training end to end at tiny size: resume from the latest checkpoint, bit-identical; errors
blame what failed."""

import errno
import json
import shutil

import flax.linen as nn
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import seqio

from hyperprompt import checkpoints, cli, data, partitioning
from hyperprompt.errors import UsageError
from hyperprompt.methods.prompt_tuning import PromptTuning
from hyperprompt.methods.vanilla import Vanilla
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.state import init_state, restore_trained
from hyperprompt.train import make_train_step, train

pytestmark = pytest.mark.slow  # conftest: handed out first

LENGTHS = {"inputs": 16, "targets": 8}
BYTE_CONFIG = T5Config(vocab_size=384, emb_dim=16, num_heads=2, num_encoder_layers=1,
                       num_decoder_layers=1, head_dim=8, mlp_dim=32)


def run(model_dir, steps, **settings):
    model = EncoderDecoderModel(Transformer(BYTE_CONFIG))
    return train(model=model, model_dir=str(model_dir), train_steps=steps, batch_size=8,
                 mixture_or_task_name="synthetic_mtl", task_feature_lengths=LENGTHS,
                 eval_period=steps, eval_examples=8, checkpoint_period=2, log_period=1,
                 async_checkpointing=False, **settings)


def train_losses(model_dir):
    lines = (model_dir / "train_log.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["kind"] == "train"]


def final_params(model_dir):
    model = EncoderDecoderModel(Transformer(BYTE_CONFIG))
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        return restore_trained(model, str(model_dir), LENGTHS, mesh)


@pytest.fixture(scope="module")
def straight_and_resumed(tmp_path_factory):
    straight, resumed = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("resumed")
    results = run(straight, 4)
    run(resumed, 2)
    run(resumed, 4)  # same MODEL_DIR: restarts from step 2
    return straight, resumed, results


def test_restart_resumes_from_latest_and_matches_uninterrupted(straight_and_resumed):
    straight, resumed, results = straight_and_resumed
    assert set(results) == set(data.task_registry("synthetic_mtl"))
    assert all(0.0 <= m["exact_match"] <= 100.0 for m in results.values())
    history = train_losses(resumed)
    assert [step for step, _ in history] == [1, 2, 3, 4]  # no step trained twice
    assert history == train_losses(straight)  # bit-identical losses after the restart
    step_a, params_a = final_params(straight)
    step_b, params_b = final_params(resumed)
    assert step_a == step_b == 4
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (resumed / "training_curves.png").stat().st_size > 0
    assert data.load_registry(str(resumed)) == data.task_registry("synthetic_mtl")


def test_each_evaluation_writes_every_examples_prediction(straight_and_resumed):
    """eval_predictions/{task}-{step}.jsonl: the split's first 8 examples in order (read
    here from seqio directly), each with the model's output text."""
    straight, _, results = straight_and_resumed
    for task in results:
        rows = [json.loads(line) for line in
                (straight / "eval_predictions" / f"{task}-4.jsonl").read_text().splitlines()]
        source = seqio.get_mixture_or_task(task).get_dataset(None, "validation", shuffle=False)
        want = [(ex["inputs_pretokenized"].decode(), ex["targets_pretokenized"].decode())
                for ex in source.take(8).as_numpy_iterator()]
        assert [(r["input"], r["target"]) for r in rows] == want, task
        assert all(isinstance(r["prediction"], str) for r in rows)


def test_predictions_are_not_written_when_switched_off(tmp_path):
    assert run(tmp_path, 1, eval_predictions=False)  # evaluated at step 1
    assert not (tmp_path / "eval_predictions").exists()


def test_restored_state_gives_the_saved_logits(tmp_path, tiny_config):
    model = EncoderDecoderModel(Transformer(tiny_config))
    mesh = partitioning.make_mesh(1)
    lengths = {"inputs": 6, "targets": 4}
    batch = {"encoder_input_tokens": np.array([[5, 6, 1, 0]] * 8, np.int32),
             "decoder_input_tokens": np.array([[0, 7, 8, 0]] * 8, np.int32),
             "decoder_target_tokens": np.array([[7, 8, 1, 0]] * 8, np.int32)}
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        saved = init_state(model, make_optimizer(), lengths, mesh, seed=1)
        manager = checkpoints.make_manager(str(tmp_path), async_save=False)
        checkpoints.save(manager, 7, saved)
        manager.close()
        fresh = init_state(model, make_optimizer(), lengths, mesh, seed=2)
        manager = checkpoints.make_manager(str(tmp_path))
        step, restored = checkpoints.restore_latest(manager, fresh)
        manager.close()
        assert step == 7
        want = model.logits(saved["params"], batch)
        assert not np.allclose(model.logits(fresh["params"], batch), want)
        np.testing.assert_array_equal(model.logits(restored["params"], batch), want)


def test_frozen_parameters_are_not_differentiated(tiny_config):
    """Prompt Tuning freezes the backbone: the step's gradient norm is the prompts' alone
    (jax.grad of the loss by the prompts), and the backbone is returned unchanged."""
    prompts = PromptTuning(num_tasks=2, prompt_length=3)
    model = EncoderDecoderModel(Transformer(tiny_config, prompts))
    mesh = partitioning.make_mesh(1)
    lengths = {"inputs": 6, "targets": 4}
    batch = {"encoder_input_tokens": np.array([[5, 6, 1, 0]] * 8, np.int32),
             "decoder_input_tokens": np.array([[0, 7, 8, 0]] * 8, np.int32),
             "decoder_target_tokens": np.array([[7, 8, 1, 0]] * 8, np.int32),
             "task_ids": np.array([0, 1] * 4, np.int32)}
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        tx = make_optimizer(groups=prompts.param_groups())
        state = init_state(model, tx, lengths, mesh, seed=1)
        prompts = state["params"]["conditioner"]
        backbone = {k: v for k, v in state["params"].items() if k != "conditioner"}
        by_prompts = jax.grad(lambda c: model.loss_fn({**backbone, "conditioner": c}, batch,
                                                      None)[0])(prompts)
        new, metrics = make_train_step(model, tx, 0, False)(state, batch)
    assert float(metrics["grad_norm"]) == pytest.approx(float(optax.tree.norm(by_prompts)),
                                                        rel=1e-5)
    jax.tree.map(np.testing.assert_array_equal, {k: new["params"][k] for k in backbone},
                 backbone)


def test_a_data_pipeline_permission_error_is_not_called_a_full_disk(tmp_path, monkeypatch):
    """Only writes to MODEL_DIR become 'cannot write to MODEL_DIR'; the data's own error
    propagates with its traceback."""
    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/data/train.tfrecord")

    monkeypatch.setattr(data, "train_batches", unreadable)
    with pytest.raises(PermissionError, match="/data/train.tfrecord"):
        run(tmp_path / "run", 2)


def test_a_failed_checkpoint_write_is_one_line_chained_to_its_cause(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "save", no_space)
    with pytest.raises(UsageError, match="cannot write to MODEL_DIR") as error:
        run(tmp_path / "run", 2)
    assert isinstance(error.value.__cause__, OSError)
    assert error.value.__cause__.errno == errno.ENOSPC


@pytest.mark.parametrize("raised, becomes_usage_error", [
    (ValueError("OUT_OF_RANGE: Error reading byte range"), True),  # tensorstore, truncated
    (FileNotFoundError(2, "No such file"), True),
    (RuntimeError("RESOURCE_EXHAUSTED: out of memory allocating 4GiB"), False),
    (MemoryError(), False),
])
def test_restore_blames_the_files_only_for_file_errors(straight_and_resumed, tmp_path,
                                                      monkeypatch, raised, becomes_usage_error):
    straight, _, _ = straight_and_resumed
    copy = tmp_path / "run"
    shutil.copytree(straight, copy)

    def failing_restore(self, *args, **kwargs):
        raise raised

    monkeypatch.setattr(ocp.CheckpointManager, "restore", failing_restore)
    expected = UsageError if becomes_usage_error else type(raised)
    with pytest.raises(expected) as error:
        run(copy, 6)
    if becomes_usage_error:
        assert "checkpoint step 4" in str(error.value) and "cannot be read" in str(error.value)
        assert error.value.__cause__ is raised
    else:
        assert error.value is raised


def test_config_gin_is_written_before_training(tmp_path, monkeypatch):
    """A run that dies before its first step (here: out of memory) still leaves its resolved
    config behind."""
    from hyperprompt import train as train_lib

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(train_lib, "init_state", out_of_memory)
    model_dir = tmp_path / "run"
    with pytest.raises(MemoryError):
        cli.main(["train", "--gin_file=experiments/quickstart.gin",
                  f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=3"])
    config = (model_dir / "config.gin").read_text()
    assert "TRAIN_STEPS = 3" in config and "CONDITIONER = @vanilla.Vanilla()" in config


def packed_run(model_dir, conditioner, steps=2):
    model = EncoderDecoderModel(Transformer(BYTE_CONFIG, conditioner))
    return train(model=model, model_dir=str(model_dir), train_steps=steps, batch_size=8,
                 mixture_or_task_name="synthetic_mtl",
                 task_feature_lengths={"inputs": 48, "targets": 16}, eval_period=steps,
                 eval_examples=4, checkpoint_period=steps, log_period=1,
                 async_checkpointing=False, pack=True)


def test_packed_training_runs_end_to_end_with_prompt_slots(tmp_path, monkeypatch):
    seen = []
    real = data.train_batches

    def spy(*args, **kwargs):
        for batch in real(*args, **kwargs):
            seen.append(batch)
            yield batch

    monkeypatch.setattr(data, "train_batches", spy)
    results = packed_run(tmp_path / "run", PromptTuning(4, 3, prompt_init="uniform"))
    assert set(results) == set(data.task_registry("synthetic_mtl"))
    assert all(np.isfinite(loss) for _, loss in train_losses(tmp_path / "run"))
    batch = seen[0]
    assert batch["encoder_input_tokens"].shape == (8, 48 + 3)  # the prompt's slots
    assert batch["decoder_segment_ids"].max() > 1 and batch["task_ids"].shape == (8,)


class PerExample(Vanilla):
    per_task = False


def test_methods_that_cannot_pack_train_unpacked(tmp_path, monkeypatch, capsys):
    seen = []
    spy = lambda *a, **kw: seen.append(kw["pack"]) or real(*a, **kw)  # noqa: E731
    real = data.train_batches
    monkeypatch.setattr(data, "train_batches", spy)
    packed_run(tmp_path / "run", PerExample())
    assert seen == [False]
    assert "training unpacked: PerExample conditions on each example's input" in (
        capsys.readouterr().out)
