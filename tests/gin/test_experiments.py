"""Experiments compose from a model, a method and a benchmark file, as t5x's do: every
combination parses and resolves the size, method, mixture and recipe its files name,
whatever order the three files come in."""

import dataclasses
import itertools
import os
import re

import gin
import pytest

from hyperprompt import cli, data
from hyperprompt.methods.hyperprompt import HyperPrompt
from hyperprompt.models import configs


def composable(folder: str) -> list[str]:
    """The files of a gin folder a user passes (`_*.gin` are only included)."""
    return sorted(name[:-4] for name in os.listdir(os.path.join(cli.gin_root(), folder))
                  if name.endswith(".gin") and not name.startswith("_"))


MODELS, METHODS, BENCHMARKS = composable("models"), composable("methods"), composable("benchmarks")
# The dims of t5_1_1_tiny.gin's own comment; every other size is a published one.
EXPECTED_CONFIGS = {**configs.CONFIGS, "t5_1_1_tiny": configs.T5Config(
    vocab_size=384, emb_dim=128, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
    head_dim=32, mlp_dim=256)}
# Model-axis devices per size: T5 1.1's 1/1/1/4/8, and v1.0 like the v1.1 size of the
# same parameter count (3B ~ XL, 11B ~ XXL).
MODEL_PARALLEL = {"t5_1_1_tiny": 1, "t5_1_1_small": 1, "t5_1_1_base": 1, "t5_1_1_large": 1,
                  "t5_1_1_xl": 4, "t5_1_1_xxl": 8, "t5_small": 1, "t5_base": 1, "t5_large": 1,
                  "t5_3B": 4, "t5_11B": 8}
# T5's fine-tuning recipe (Raffel et al. 2020), checkpoints every 2,000 steps (He et al.
# 2022), packing as t5x; the network's run-time switches of the benchmark files.
RECIPE = {"BATCH_SIZE": 128, "TRAIN_STEPS": 2**18, "LEARNING_RATE": 1e-3, "PACK": True,
          "TASK_FEATURE_LENGTHS": {"inputs": 512, "targets": 64}, "EVAL_PERIOD": 2000,
          "CHECKPOINT_PERIOD": 2000, "KEEP_CHECKPOINTS": None}
NETWORK = dict(scan_layers=True, remat_policy="dots", dtype="bfloat16", dropout_rate=0.1)
# Groups with a rate of their own (the rest train at LEARNING_RATE): Lester et al.'s 0.3
# for the prompts, the backbone frozen.
# The adapter methods train the backbone's LayerNorm scales (at the run's rate) and freeze
# the rest of it.
ADAPTER_RATES = {"(?!conditioner/).*norm/scale": None, "(?!conditioner/).*": "frozen"}
METHOD_RATES = {"prompt_tuning": {"conditioner/.*": 0.3, "(?!conditioner/).*": "frozen"},
                **dict.fromkeys(("adapters", "single_adapter", "hyperformer", "hyperformer_pp"),
                                ADAPTER_RATES)}
# ATTEMPT (Asai et al. 2022): sources and backbone frozen, prompts and G at Adam's 0.3.
METHOD_RATES["attempt"] = METHOD_RATES["attempt_m"] = {
    "conditioner/source_prompts": "frozen", "(?!conditioner/).*": "frozen",
    "conditioner/attention_.*": 0.3, "conditioner/.*": 0.3}


def declared_conditioner(method: str) -> str:
    """The configurable the method file (or a `_` file it includes) sets CONDITIONER to."""
    def read(name: str) -> str:
        with open(os.path.join(cli.gin_root(), name)) as f:
            return f.read()

    text = read(f"methods/{method}.gin")
    text += "".join(map(read, re.findall(r"^include '(methods/_[^']+)'", text, re.M)))
    return re.search(r"^CONDITIONER = @([\w.]+)\(\)", text, re.M).group(1)


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def resolved(files: list[str]) -> dict:
    """What a run parsed from `files` would get."""
    cli.parse_gin(files, ["MODEL_DIR = '/tmp/x'", "INITIAL_CHECKPOINT_PATH = '/ckpt'"], [])
    try:
        macro = lambda name: gin.query_parameter(f"{name}/macro.value")  # noqa: E731
        model = macro("MODEL").scoped_configurable_fn()
        return {
            "config": model.module.config,
            "conditioner": model.module.conditioner,
            "macros": {name: macro(name) for name in (*RECIPE, "MIXTURE_OR_TASK_NAME",
                                                      "NUM_TASKS", "MODEL_PARALLEL")},
            # What train, eval and infer pass to the mesh.
            "model_parallel": [gin.query_parameter(f"{fn}.model_parallel")
                               .scoped_configurable_fn()
                               for fn in ("train", "evaluate_checkpoint", "infer")],
            "pack": gin.query_parameter("train.pack").scoped_configurable_fn(),
        }
    finally:
        gin.clear_config()


def check(model: str, method: str, benchmark: str, order: tuple[int, ...] = (0, 1, 2)) -> None:
    files = [f"models/{model}.gin", f"methods/{method}.gin", f"benchmarks/{benchmark}.gin"]
    got = resolved([files[i] for i in order])
    assert got["config"] == dataclasses.replace(EXPECTED_CONFIGS[model], **NETWORK)
    conditioner = got["conditioner"]
    declared = gin.get_configurable(declared_conditioner(method))
    assert qualified_name(type(conditioner)) == qualified_name(declared)
    if isinstance(conditioner, HyperPrompt):
        assert conditioner.variant == method.removeprefix("hyperprompt_")
        assert conditioner.config == got["config"]
    rates = {g.pattern: "frozen" if g.frozen else g.optimizer.get("learning_rate")
             for g in conditioner.param_groups()}
    assert rates == METHOD_RATES.get(method, {})
    macros = got["macros"]
    assert {name: macros[name] for name in RECIPE} == RECIPE
    assert macros["MIXTURE_OR_TASK_NAME"] == benchmark
    assert macros["NUM_TASKS"] == len(data.task_registry(benchmark))
    assert macros["MODEL_PARALLEL"] == MODEL_PARALLEL[model]
    assert got["model_parallel"] == [MODEL_PARALLEL[model]] * 3
    assert got["pack"] is True  # what train gets: PACK, on in the recipe


def test_quickstart_trains_unpacked():
    cli.parse_gin(["experiments/quickstart.gin"], ["MODEL_DIR = '/tmp/x'"], [])
    try:
        assert gin.query_parameter("train.pack").scoped_configurable_fn() is False
    finally:
        gin.clear_config()


def test_the_files_that_compose():
    assert set(MODELS) == set(EXPECTED_CONFIGS) == set(MODEL_PARALLEL)
    assert BENCHMARKS == ["glue_mtl", "super_glue_mtl"]
    assert {"vanilla", "prompt_tuning", "hyperprompt_share", "hyperprompt_sep",
            "hyperprompt_global"} <= set(METHODS)


@pytest.mark.parametrize("model", MODELS)
def test_every_method_and_benchmark_at_this_size(model):
    for method, benchmark in itertools.product(METHODS, BENCHMARKS):
        check(model, method, benchmark)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=str)
def test_any_order_of_model_method_and_benchmark(order):
    """Each model, method and benchmark file in this order at least once: a file that
    re-sets a macro another one owns changes the result in some order."""
    for i, model in enumerate(MODELS):
        check(model, METHODS[i % len(METHODS)], BENCHMARKS[i % len(BENCHMARKS)], order)
