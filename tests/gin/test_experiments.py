"""Every benchmark experiment file parses and wires the size, method and mixture it names."""

import dataclasses
import glob
import os

import gin
import pytest

from hyperprompt import cli, data
from hyperprompt.models import configs

EXPERIMENTS = sorted(glob.glob(os.path.join(cli.gin_root(), "experiments", "*_mtl_*.gin")))
SIZES = {"base": "t5_1_1_base", "large": "t5_1_1_large", "xl": "t5_1_1_xl", "xxl": "t5_1_1_xxl"}
CONDITIONERS = {"vanilla": "Vanilla", "prompt_tuning": "PromptTuning",
                "hyperprompt_share": "HyperPrompt", "hyperprompt_sep": "HyperPrompt",
                "hyperprompt_global": "HyperPrompt"}


def test_one_file_per_benchmark_method_and_size():
    names = {os.path.basename(p) for p in EXPERIMENTS}
    assert names == {f"{b}_mtl_{m}_{s}.gin" for b in ("glue", "super_glue")
                     for m in CONDITIONERS for s in SIZES}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_experiment_wires_what_its_name_says(path):
    name = os.path.basename(path)[:-4]
    benchmark = "super_glue" if name.startswith("super_glue") else "glue"
    method, size = name[len(benchmark) + 5:].rsplit("_", 1)
    cli.parse_gin([path], ["MODEL_DIR = '/tmp/x'", "INITIAL_CHECKPOINT_PATH = '/ckpt'"], [])
    try:
        macro = lambda n: gin.query_parameter(f"{n}/macro.value")  # noqa: E731
        assert macro("MIXTURE_OR_TASK_NAME") == f"{benchmark}_mtl"
        assert macro("NUM_TASKS") == len(data.task_registry(f"{benchmark}_mtl"))
        assert (macro("SCAN_LAYERS"), macro("BATCH_SIZE"), macro("EVAL_PERIOD")) == (
            True, 128, 2000)
        assert macro("KEEP_CHECKPOINTS") is None  # every step, for per-task best selection
        with gin.config_scope(None):
            config = gin.get_configurable(configs.T5Config)()
        assert config == dataclasses.replace(configs.CONFIGS[SIZES[size]], scan_layers=True,
                                             remat_policy="dots", dtype="bfloat16",
                                             dropout_rate=0.1)
        conditioner = macro("CONDITIONER")
        assert conditioner.selector.endswith(CONDITIONERS[method])
        if method.startswith("hyperprompt"):
            assert macro("HYPERPROMPT_VARIANT") == method.split("_")[1]
        assert macro("LEARNING_RATE") == (0.3 if method == "prompt_tuning" else 1e-3)
    finally:
        gin.clear_config()
