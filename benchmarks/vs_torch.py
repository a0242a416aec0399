"""The project's T5 vs HF transformers T5 (PyTorch, eager) on this CPU, side by side.

  python -m benchmarks.vs_torch [--sizes tiny small] [--repeats 20]

Both train the same network (same dims, same parameter count, checked) from random
initialisation with Adafactor (T5's settings) on the same random batch, fp32; every round
runs one step of each variant in turn, and the result is each variant's median step time
after warm-up, as target tokens per second and as a ratio to PyTorch. Compile time is
reported apart. Greedy decoding (KV cache, every sequence runs the full length) is timed
the same way. Fair to PyTorch: denormals are flushed, as XLA on CPU does (a random-init T5
with an untied head makes denormal softmax gradients, which PyTorch otherwise computes
slowly), and PyTorch uses as many threads as XLA's CPU client has cores.

Project variants: `jax` (one CPU device), `jax 2 devices` (the batch split over two CPU
devices, data parallel: the script asks XLA for two host devices unless XLA_FLAGS is set)
and `jax bf16` (bfloat16 activations, fp32 parameters; a separate row, not the fp32 figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import copy_bandwidth_gb_s, cores, interleaved, timed, write_result  # noqa: E402
from hyperprompt import partitioning  # noqa: E402
from hyperprompt.model import EncoderDecoderModel  # noqa: E402
from hyperprompt.models.configs import CONFIGS, T5Config  # noqa: E402
from hyperprompt.models.t5 import Transformer  # noqa: E402
from hyperprompt.optim import make_optimizer  # noqa: E402
from hyperprompt.state import init_state  # noqa: E402
from hyperprompt.train import make_train_step  # noqa: E402

# name -> (config, batch size); inputs 128, targets 32 (the settings).
SIZES: dict[str, tuple[T5Config, int]] = {
    "tiny": (dataclasses.replace(CONFIGS["t5_1_1_small"], emb_dim=128, num_heads=4, head_dim=32,
                                 num_encoder_layers=2, num_decoder_layers=2, mlp_dim=256), 16),
    "small": (CONFIGS["t5_1_1_small"], 8),
}
LENGTHS = {"inputs": 128, "targets": 32}
LEARNING_RATE = 1e-3


def random_batch(batch_size: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids in [2, vocab): inputs [B, 128], decoder inputs/targets [B, 32]."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(2, vocab, size=(batch_size, LENGTHS["targets"])).astype(np.int32)
    return {
        "encoder_input_tokens": rng.integers(2, vocab, size=(batch_size, LENGTHS["inputs"]))
        .astype(np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]],
                                               axis=1),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": np.ones_like(targets),
    }


class JaxRunner:
    """The project's jitted train step and greedy decoder on a mesh of `devices`."""

    def __init__(self, config: T5Config, batch: dict, devices):
        self.model = EncoderDecoderModel(Transformer(config))
        self.tx = make_optimizer(learning_rate=LEARNING_RATE)
        self.mesh = partitioning.make_mesh(1, devices)
        with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(self.mesh):
            self.state = init_state(self.model, self.tx, LENGTHS, self.mesh, seed=0)
            self.batch = partitioning.shard_batch(batch, self.mesh)
        self.step_fn = jax.jit(make_train_step(self.model, self.tx, 0, False), donate_argnums=0)
        self.decode_fn = jax.jit(lambda p, b: self.model.predict_batch(p, b, eos_id=-1))
        self.params = sum(x.size for x in jax.tree.leaves(self.state["params"]))

    def step(self):
        with jax.set_mesh(self.mesh):
            self.state, metrics = self.step_fn(self.state, self.batch)
        return jax.block_until_ready(metrics["loss"])

    def decode(self):
        with jax.set_mesh(self.mesh):
            return jax.block_until_ready(self.decode_fn(self.state["params"], self.batch))


class TorchRunner:
    """HF transformers' T5ForConditionalGeneration with its Adafactor, eager."""

    def __init__(self, config: T5Config, batch: dict):
        import torch
        import transformers

        torch.manual_seed(0)
        hf = transformers.T5Config(
            vocab_size=config.vocab_size, d_model=config.emb_dim, d_kv=config.head_dim,
            d_ff=config.mlp_dim, num_layers=config.num_encoder_layers,
            num_decoder_layers=config.num_decoder_layers, num_heads=config.num_heads,
            feed_forward_proj="gated-gelu", dropout_rate=0.0, decoder_start_token_id=0,
            eos_token_id=1, pad_token_id=0)
        # transformers 5 forces tied embeddings in T5Config.__init__: untie v1.1's lm_head,
        # then share the encoder/decoder input embeddings again (T5 never unties those).
        hf.tie_word_embeddings = hf.scale_decoder_outputs = False
        self.model = transformers.T5ForConditionalGeneration(hf)
        self.model.encoder.set_input_embeddings(self.model.shared)
        self.model.decoder.set_input_embeddings(self.model.shared)
        self.model.train()
        self.optimizer = transformers.optimization.Adafactor(
            self.model.parameters(), lr=LEARNING_RATE, scale_parameter=True,
            relative_step=False, warmup_init=False, clip_threshold=1.0, decay_rate=-0.8)
        self.inputs = torch.from_numpy(batch["encoder_input_tokens"]).long()
        self.decoder_inputs = torch.from_numpy(batch["decoder_input_tokens"]).long()
        self.labels = torch.from_numpy(batch["decoder_target_tokens"]).long()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.torch = torch

    def step(self):
        out = self.model(input_ids=self.inputs, decoder_input_ids=self.decoder_inputs,
                         labels=self.labels)
        out.loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out.loss.item()

    def decode(self):
        with self.torch.inference_mode():
            return self.model.generate(
                input_ids=self.inputs, max_new_tokens=LENGTHS["targets"],
                min_new_tokens=LENGTHS["targets"], do_sample=False, num_beams=1, use_cache=True)


def compare(size: str, repeats: int, variants: list[str]) -> dict:
    """Train and decode medians of every variant at one size, as tokens/s and vs torch."""
    config, batch_size = SIZES[size]
    batch = random_batch(batch_size, config.vocab_size)
    devices = jax.devices()
    runners = {"torch": TorchRunner(config, batch)}
    if "jax" in variants:
        runners["jax"] = JaxRunner(config, batch, devices[:1])
    if "jax 2 devices" in variants and len(devices) >= 2:
        runners["jax 2 devices"] = JaxRunner(config, batch, devices[:2])
    if "jax bf16" in variants:
        runners["jax bf16"] = JaxRunner(dataclasses.replace(config, dtype="bfloat16"), batch,
                                        devices[:1])
    counts = {name: r.params for name, r in runners.items()}
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the networks differ in size: {counts} parameters; the comparison "
                           f"needs the same T5 on both sides.")
    compile_s = {name: timed(r.step) for name, r in runners.items() if name != "torch"}
    compile_decode_s = {name: timed(r.decode) for name, r in runners.items() if name != "torch"}
    train = interleaved({name: r.step for name, r in runners.items()}, repeats)
    decode = interleaved({name: r.decode for name, r in runners.items()}, max(repeats // 4, 3),
                         warmup=1)
    target_tokens = batch_size * LENGTHS["targets"]
    # Greedy decoding reads every decoder weight (the 32128-wide head included) once a token.
    decoder_bytes = sum(x.nbytes for x in jax.tree.leaves(runners["jax"].state["params"]["decoder"])
                        ) if "jax" in runners else None
    rows = {name: {
        "train_step_s": train[name], "train_tokens_per_s": target_tokens / train[name],
        "train_x_torch": train["torch"] / train[name],
        "decode_s": decode[name], "decode_tokens_per_s": target_tokens / decode[name],
        "decode_x_torch": decode["torch"] / decode[name],
        "compile_s": compile_s.get(name), "decode_compile_s": compile_decode_s.get(name),
        "decode_weights_gb_s": decoder_bytes and decoder_bytes * LENGTHS["targets"]
        / decode[name] / 1e9,
    } for name in runners}
    return {"batch_size": batch_size, "lengths": LENGTHS, "parameters": counts["torch"],
            "decoder_weight_bytes": decoder_bytes,
            "config": dataclasses.asdict(config), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=["jax", "jax 2 devices", "jax bf16"])
    args = parser.parse_args()
    import torch

    torch.set_flush_denormal(True)
    torch.set_num_threads(cores())
    results = {}
    for size in args.sizes:
        results[size] = compare(size, args.repeats, args.variants)
        print(f"{size}: {results[size]['parameters']:,} parameters, batch "
              f"{results[size]['batch_size']}")
        for name, row in results[size]["rows"].items():
            print(f"  {name:14s} train {row['train_step_s'] * 1e3:8.1f} ms "
                  f"x{row['train_x_torch']:.2f}  decode {row['decode_s'] * 1e3:8.1f} ms "
                  f"x{row['decode_x_torch']:.2f}", flush=True)
    copy_gb_s = copy_bandwidth_gb_s()
    print(f"memory: one pass reading and writing a buffer reaches {copy_gb_s:.1f} GB/s")
    write_result("vs_torch", {"torch": torch.__version__, "torch_threads": cores(),
                              "copy_gb_s": copy_gb_s,
                              "repeats": args.repeats, "sizes": results})


if __name__ == "__main__":
    main()
