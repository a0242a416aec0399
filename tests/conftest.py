"""Test session set-up: 8 CPU devices (so sharding runs on a real mesh), quiet TF, and one
compilation cache for the session."""

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
from unittest import mock

# Must happen before jax is imported anywhere in the session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Many tests compile the same programs (the tiny model's steps, init, decoding), in this
# process, in the other xdist workers and in the CLI subprocesses they start: JAX's
# persistent cache compiles each once per session (a hit returns the same executable, so no
# number changes). The process that creates the directory (xdist's controller, or a plain
# pytest) removes it at exit; workers and subprocesses inherit it through the environment.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="hyperprompt-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hyperprompt.models.configs import T5Config  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(os.path.dirname(REPO_ROOT), "shared", "fixtures")
T5X_CHECKPOINT = os.path.join(FIXTURES, "t5x_legacy_t5_1_1_tiny", "checkpoint_3")
T5_VOCAB = os.path.join(FIXTURES, "t5_vocab", "sentencepiece.model")


def _fixture_path(path: str) -> str:
    """A ../shared/fixtures path (CI lays shared/ beside the clone; a user's clone without it
    skips only the tests that read it)."""
    if not os.path.exists(path):
        pytest.skip(f"../shared/fixtures is not beside this checkout ({path})")
    return path


@pytest.fixture
def t5x_checkpoint() -> str:
    """The checkpoint written by t5x itself in ../shared/fixtures."""
    return _fixture_path(T5X_CHECKPOINT)


@pytest.fixture
def t5_vocab():
    """T5's SentencePiece vocabulary (../shared/fixtures) bound as the tasks' vocabulary file."""
    import gin

    from hyperprompt.tasks import vocabulary

    path = _fixture_path(T5_VOCAB)
    with gin.unlock_config():
        gin.bind_parameter("hyperprompt.tasks.vocabulary.sentencepiece_model_path.path", path)
    yield vocabulary.T5Vocabulary()
    gin.clear_config()


@contextlib.contextmanager
def one_device_runs():
    """In-process runs (`cli.main`) build their mesh over the first device only. For the
    integration runs, which train for hundreds of steps to see a method learn: their d = 32
    step split over the session's 8 CPU devices took twice the wall time and 1.3x the CPU
    of one device on 2 cores. Sharded training is tested where that is the point
    (test_sharding_rules, test_data_sharding, test_multiprocess, test_reliability).

    One device rounds differently (its reductions split over fewer threads): the same run's
    losses differ by ~1e-7 at step 1 and ~1e-3 by step 50, like another machine's. The
    HyperFormer++ and ATTEMPT integration runs stay on 8 devices: their margins were
    measured there and are narrower than a rounding change moves them (at seed 1, one
    device: HyperFormer++ 2.7 points over its backbone, the test asks 5)."""
    import jax

    from hyperprompt import partitioning

    one = functools.partial(partitioning.make_mesh, devices=jax.devices()[:1])
    with mock.patch.object(partitioning, "make_mesh", one):
        yield


# The methods' integration runs (tests/methods/test_*_integration.py): a 2+2-layer T5 1.1 at
# d=32 (4 heads of 8) from scratch on synthetic_mtl, batches of 64, AdamW with a 50-step
# warm-up and cosine decay to TRAIN_STEPS (each test sets TRAIN_STEPS, EVAL_PERIOD and its
# eval examples).
INTEGRATION_SETTINGS = """
from __gin__ import dynamic_registration
import optax
from hyperprompt import optim
from hyperprompt import train as train_lib
from hyperprompt.models import configs

configs.T5Config:
  emb_dim = 32
  mlp_dim = 64
  num_heads = 4
  head_dim = 8
TASK_FEATURE_LENGTHS = {'inputs': 20, 'targets': 12}
BATCH_SIZE = 64
SEED = 0
optim.make_optimizer.name = 'adamw'
LEARNING_RATE = @optax.warmup_cosine_decay_schedule()
optax.warmup_cosine_decay_schedule:
  init_value = 0.0
  peak_value = 2e-2
  warmup_steps = 50
  decay_steps = %TRAIN_STEPS
"""

TINY = T5Config(vocab_size=64, emb_dim=16, num_heads=2, num_encoder_layers=2,
                num_decoder_layers=2, head_dim=8, mlp_dim=32)


@pytest.fixture
def tiny_config() -> T5Config:
    """A 2+2-layer T5 1.1 small enough to compile in a second."""
    return TINY


@pytest.fixture(scope="module")
def tiny_config_module() -> T5Config:
    """`tiny_config` for module-scoped fixtures."""
    return TINY


class T5Adafactor:
    """T5's Adafactor (Shazeer & Stern 2018, as t5x's adafactor.py), written from the
    algorithm in numpy: second moments factored over the two largest dimensions when the
    second largest is >= 128 (rows: the second largest, columns: the largest), decay
    1 - t^-0.8, update clipping at RMS 1, steps relative to max(RMS(param), 1e-3), weight
    decay p <- (1 - wd) p. `step` and `v` ({name: v, or (v_row, v_col) with kept dims})
    continue a saved state."""

    def __init__(self, lr, decay=0.8, param_scale=True, clip=1.0, weight_decay=0.0,
                 step=0, v=None):
        self.lr, self.decay, self.param_scale = lr, decay, param_scale
        self.clip, self.weight_decay, self.t, self.v = clip, weight_decay, step, dict(v or {})

    @staticmethod
    def factored_dims(shape):
        """(row axis, column axis), or None when not factored."""
        dims = np.argsort(shape)
        return (dims[-2], dims[-1]) if len(shape) >= 2 and shape[dims[-2]] >= 128 else None

    def step(self, params, grads):
        self.t += 1
        beta = 1.0 - self.t ** -self.decay
        out = {}
        for name, p in params.items():
            g = np.asarray(grads[name], np.float64)
            g2 = g * g + 1e-30
            if dims := self.factored_dims(p.shape):
                row, col = dims  # v_row: mean over columns; v_col: mean over rows
                vr, vc = self.v.get(name, (0.0, 0.0))
                vr = beta * vr + (1 - beta) * g2.mean(axis=col, keepdims=True)
                vc = beta * vc + (1 - beta) * g2.mean(axis=row, keepdims=True)
                self.v[name] = (vr, vc)
                v = vr * vc / vr.mean(axis=row, keepdims=True)
            else:
                v = beta * self.v.get(name, 0.0) + (1 - beta) * g2
                self.v[name] = v
            u = g / np.sqrt(v)
            u /= max(1.0, np.sqrt(np.mean(u * u)) / self.clip)
            scale = max(np.sqrt(np.mean(np.asarray(p, np.float64) ** 2)), 1e-3) \
                if self.param_scale else 1.0
            out[name] = (1 - self.weight_decay) * np.asarray(p, np.float64) - self.lr * scale * u
        return out


@pytest.fixture(scope="session")
def t5_adafactor():
    """The independent Adafactor reference class (`T5Adafactor`)."""
    return T5Adafactor


@pytest.fixture(scope="session")
def save_hf_t5():
    """`save(path, **config_json_fields)`: a random transformers T5 saved with save_pretrained.

    transformers 5 forces tie_word_embeddings=True in T5Config.__init__, so the wanted value
    is set afterwards; an untied model then shares the encoder/decoder input embeddings
    again (T5 never unties those; the hub's v1.1 checkpoints store them equal). Torch
    flushes denormals as XLA does.
    """
    import torch
    import transformers

    torch.set_flush_denormal(True)

    def save(path, seed: int = 0, tie_word_embeddings: bool = True, **fields):
        torch.manual_seed(seed)
        config = transformers.T5Config(dropout_rate=0.0, decoder_start_token_id=0,
                                       eos_token_id=1, pad_token_id=0, **fields)
        config.tie_word_embeddings = config.scale_decoder_outputs = tie_word_embeddings
        model = transformers.T5ForConditionalGeneration(config).eval()
        model.encoder.set_input_embeddings(model.shared)
        model.decoder.set_input_embeddings(model.shared)
        model.save_pretrained(path)
        return model

    return save


# A 2-step quickstart run at a small width (byte vocabulary), no eval: the run that the
# reliability tests copy and then damage, lock, resume or evaluate.
SMALL_RUN = ["--gin_file=experiments/quickstart.gin", "--gin.configs.T5Config.emb_dim=32",
             "--gin.configs.T5Config.mlp_dim=64", "--gin.configs.T5Config.num_heads=2",
             "--gin.configs.T5Config.head_dim=16", "--gin.BATCH_SIZE=8",
             "--gin.train_lib.train.eval_examples=0", "--gin.EVAL_EXAMPLES=4"]


@pytest.fixture(scope="session")
def small_run_flags() -> list[str]:
    """The flags of `trained_run` (add MODEL_DIR and a command)."""
    return SMALL_RUN


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """MODEL_DIR of a finished 2-step `SMALL_RUN` (copy it before changing anything)."""
    from hyperprompt import cli

    model_dir = tmp_path_factory.mktemp("trained_run") / "run"
    assert cli.main(["train", *SMALL_RUN, f"--gin.MODEL_DIR='{model_dir}'",
                     "--gin.TRAIN_STEPS=2"]) == 0
    return model_dir


def tree_state(path) -> dict | None:
    """{relative path: (size, mtime_ns, content)} of every file and folder under `path`
    (None if it does not exist): equal before and after means nothing was written."""
    if not os.path.exists(path):
        return None
    state = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(folder, name)
            stat = os.stat(full)
            content = open(full, "rb").read() if name in files else None
            state[os.path.relpath(full, path)] = (stat.st_size, stat.st_mtime_ns, content)
    return state


@pytest.fixture(scope="session")
def snapshot():
    """`tree_state`: the whole tree under a path, to compare before and after a command."""
    return tree_state


def pytest_collection_modifyitems(items):
    """Files marked `slow` first: xdist hands out whole files in this order, so the suite
    does not end on one long file while the other workers idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable
