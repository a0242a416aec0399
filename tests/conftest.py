"""Test session set-up: 8 CPU devices (so sharding runs on a real mesh), quiet TF."""

import os

# Must happen before jax is imported anywhere in the session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

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


@pytest.fixture
def tiny_config() -> T5Config:
    """A 2+2-layer T5 1.1 small enough to compile in a second."""
    return T5Config(vocab_size=64, emb_dim=16, num_heads=2, num_encoder_layers=2,
                    num_decoder_layers=2, head_dim=8, mlp_dim=32)


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
