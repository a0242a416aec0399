"""Training examples per second, packed vs unpacked rows, as a ratio in one run.

  python benchmarks/packing.py [--size tiny] [--steps 10] [--batch 16]

At the fine-tuning recipe's lengths (benchmarks/_t5_finetune.gin: inputs 512, targets
64), on mock GLUE-like examples (no downloads): random token ids, inputs of lognormal
length (mean ~55 tokens with EOS, clipped to 512), targets of 1-3 tokens plus EOS, as
GLUE's classification labels. The rows come from the real pipeline
(`data.train_batches`); the data pipeline is not timed, only the train step. Ratios
(not absolute times) are the result: they hold across machines.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import numpy as np
import seqio
import tensorflow as tf

from hyperprompt import data, partitioning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import CONFIGS, T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.state import init_state
from hyperprompt.train import make_train_step

LENGTHS = {"inputs": 512, "targets": 64}
VOCAB = 32128
TASK = "packing_benchmark_mock_glue"
# t5_1_1_tiny.gin's dims with T5's vocabulary: compiles and runs in seconds on a CPU.
TINY = T5Config(vocab_size=VOCAB, emb_dim=128, num_heads=4, num_encoder_layers=2,
                num_decoder_layers=2, head_dim=32, mlp_dim=256)


def mock_examples(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    """GLUE-like token sequences (EOS added by the task)."""
    del split, shuffle_files, seed
    def examples():
        rng = np.random.default_rng(0)
        for _ in range(20_000):
            length = int(np.clip(rng.lognormal(np.log(45), 0.6), 4, LENGTHS["inputs"] - 1))
            yield {"inputs": rng.integers(3, VOCAB, length, np.int32),
                   "targets": rng.integers(3, VOCAB, rng.integers(1, 4), np.int32)}

    spec = tf.TensorSpec([None], tf.int32)
    return tf.data.Dataset.from_generator(examples,
                                          output_signature={"inputs": spec, "targets": spec})


def register_mock_task() -> None:
    vocabulary = seqio.PassThroughVocabulary(VOCAB, eos_id=1)
    feature = seqio.Feature(vocabulary, add_eos=True, dtype=tf.int32)
    seqio.TaskRegistry.add(
        TASK, source=seqio.FunctionDataSource(mock_examples, splits=["train"]),
        preprocessors=[seqio.preprocessors.append_eos_after_trim],
        output_features={"inputs": feature, "targets": feature})


def examples_in(batch: dict[str, np.ndarray]) -> int:
    """Examples of a batch: segments when packed, rows with a target otherwise."""
    if "decoder_segment_ids" in batch:
        return int(batch["decoder_segment_ids"].max(axis=1).sum())
    return int((batch["decoder_target_tokens"][:, 0] > 0).sum())


def examples_per_second(config: T5Config, batches: list[dict]) -> float:
    """Train-step throughput over `batches` (the first, compiling, step untimed)."""
    model = EncoderDecoderModel(Transformer(config))
    tx = make_optimizer()
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        state = init_state(model, tx, LENGTHS, mesh, seed=0)
        step = jax.jit(make_train_step(model, tx, 0, False), donate_argnums=0)
        sharded = [partitioning.shard_batch(b, mesh) for b in batches]
        state, metrics = step(state, sharded[0])
        jax.block_until_ready(metrics["loss"])
        start = time.perf_counter()
        for batch in sharded[1:]:
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        seconds = time.perf_counter() - start
    return sum(map(examples_in, batches[1:])) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", *sorted(CONFIGS)])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    config = TINY if args.size == "tiny" else CONFIGS[args.size]
    register_mock_task()
    results = {}
    for pack in (False, True):
        stream = data.train_batches(TASK, [TASK], LENGTHS, args.batch, seed=0, pack=pack)
        batches = [next(stream) for _ in range(args.steps + 1)]
        per_row = sum(map(examples_in, batches)) / (len(batches) * args.batch)
        tokens = {f: np.mean([(b[k] > 0).sum(axis=1).mean() for b in batches]) for f, k in
                  (("inputs", "encoder_input_tokens"), ("targets", "decoder_target_tokens"))}
        results[pack] = (per_row, tokens, examples_per_second(config, batches))
    example = {f: f"{n:.1f}" for f, n in results[False][1].items()}
    print(f"{args.size}, batch {args.batch} rows, lengths {LENGTHS}, "
          f"{jax.devices()[0].platform}; mock GLUE-like examples, mean tokens {example}")
    print(f"{'rows':10s} {'examples/row':>13s} {'input tokens/row':>17s} {'examples/s':>11s}")
    for pack, (per_row, tokens, rate) in results.items():
        print(f"{'packed' if pack else 'unpacked':10s} {per_row:13.2f} {tokens['inputs']:17.0f} "
              f"{rate:11.1f}")
    print(f"packed / unpacked examples per second: {results[True][2] / results[False][2]:.2f}")


if __name__ == "__main__":
    main()
