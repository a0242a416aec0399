"""The method contract: a method defined only in this file trains through `hyperprompt
train`, reports its parameters in `hyperprompt report --params` and goes through
`hyperprompt report`, with no edit anywhere else in the project."""

import functools
import json
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import cli
from hyperprompt.analysis import params as params_lib
from hyperprompt.convert import sources
from hyperprompt.methods import base
from hyperprompt.methods.base import Method, check_contract, register, registered
from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.configs import CONFIGS, T5Config
from hyperprompt.optim import BACKBONE, ParamGroup
from hyperprompt.state import params_initializer

EMBED = 5  # the task embedding's width
LENGTH = 3  # prompt length


class TaskPrompt(Method):
    """Input prompt = task embedding @ generator, the embedding taken from the backbone's
    vocabulary table (`init_from_backbone`) and frozen; sows each example's embedding norm."""

    num_tasks: int

    @nn.compact
    def __call__(self, task_ids, encoder_tokens, embedder, deterministic=True):
        d = embedder.features
        table = self.param("task_embedding", nn.initializers.normal(1.0), (self.num_tasks, EMBED))
        generator = self.param("generator", nn.initializers.normal(0.1), (EMBED, LENGTH * d))
        task = jnp.take(table, task_ids, axis=0)  # [B, EMBED]
        self.sow("intermediates", "task_norm", jnp.linalg.norm(task, axis=-1))
        return Conditioning(input_prompt=(task @ generator).reshape(-1, LENGTH, d))

    def param_groups(self):
        return (ParamGroup("conditioner/task_embedding", frozen=True),
                ParamGroup(BACKBONE, frozen=True))

    def init_from_backbone(self, params, backbone, rng):
        rows = backbone["token_embedder"]["embedding"][:self.num_tasks, :EMBED]
        return {**params, "task_embedding": rows}

    def parameter_count(self, config):
        return self.num_tasks * EMBED + EMBED * LENGTH * config.emb_dim

    def label(self):
        return "Task Prompt"


@pytest.fixture(scope="module", autouse=True)
def registered_here():
    """Registered while this file's tests run, as its own module would at import; restored
    after, so that files sharing the process (pytest-xdist) never see it."""
    registered()  # the project's own methods first: they register once, at import
    with mock.patch.dict(base._REGISTRY):
        register("task_prompt_contract_test", TaskPrompt)
        yield

SMALL = ["--gin.configs.T5Config.emb_dim=32", "--gin.configs.T5Config.mlp_dim=64",
         "--gin.configs.T5Config.num_heads=2", "--gin.configs.T5Config.head_dim=16",
         "--gin.configs.T5Config.num_encoder_layers=1",
         "--gin.configs.T5Config.num_decoder_layers=1", "--gin.BATCH_SIZE=8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(flags, MODEL_DIR) of 3 steps of the quickstart with this file's method."""
    root = tmp_path_factory.mktemp("contract")
    method = root / "task_prompt.gin"  # what a method's gin file holds
    method.write_text(f"from __gin__ import dynamic_registration\nimport {__name__}\n"
                      f"from hyperprompt.models import t5\n"
                      f"CONDITIONER = @{__name__}.TaskPrompt()\n"
                      f"t5.Transformer.conditioner = %CONDITIONER\n"
                      f"{__name__}.TaskPrompt.num_tasks = %NUM_TASKS\n")
    flags = ["--gin_file=experiments/quickstart.gin", f"--gin_file={method}", *SMALL,
             f"--gin.MODEL_DIR='{root / 'run'}'"]
    assert cli.main(["train", *flags, "--gin.TRAIN_STEPS=3",
                     "--gin.train_lib.train.eval_examples=4"]) == 0
    return flags, root / "run"


def test_it_trains_with_its_groups_and_backbone_initialisation(run):
    flags, model_dir = run
    args, bindings = cli.parse_args(["train", *flags])
    cli.parse_gin(args.gin_file, bindings, [])
    model = cli._macro("MODEL").scoped_configurable_fn()
    config = model.module.config
    # what `train` initialised (seed 0), before the method's own init
    initial = jax.tree.map(np.asarray, params_initializer(
        model, {"inputs": 24, "targets": 12})(jax.random.PRNGKey(0)))
    saved = {k: t.load() for k, t in sources.read(str(model_dir), "hyperprompt",
                                                  config).items()}
    assert json.loads((model_dir / "results.json").read_text())  # it was evaluated
    np.testing.assert_array_equal(saved["conditioner/task_embedding"],
                                  saved["token_embedder/embedding"][:4, :EMBED])
    assert not np.allclose(saved["conditioner/generator"], initial["conditioner"]["generator"])
    for path, value in sources.read(str(model_dir), "hyperprompt", config).items():
        if not path.startswith("conditioner/"):  # the backbone is frozen by the method
            want = functools.reduce(lambda tree, key: tree[key], path.split("/"), initial)
            # (train's init is jit-compiled: equal up to float rounding; a step moves more)
            np.testing.assert_allclose(value.load(), want, rtol=1e-6, atol=0, err_msg=path)


def test_report_params_lists_it(monkeypatch, capsys):
    sizes = {k: CONFIGS[k] for k in ("t5_1_1_small", "t5_1_1_base")}
    monkeypatch.setattr(params_lib, "parameter_report",
                        functools.partial(params_lib.parameter_report, configs=sizes))
    assert cli.main(["report", "--params"]) == 0
    out = capsys.readouterr().out
    row = out[out.index("Task Prompt  "):].splitlines()
    count = 8 * EMBED + EMBED * LENGTH * 768  # 8 tasks at T5 1.1 Base: 11,560
    assert f"{count / 1e6:.2f}M" in row[0] and f"{100 * count / 247_577_856:.3f}%" in row[1]
    trained = EMBED * LENGTH * 768  # the generator: its groups freeze the rest
    assert params_lib.parameter_report(8, configs=sizes)["t5_1_1_base"][
        "task_prompt_contract_test"] == {"method": count, "trainable": trained}


def test_it_goes_through_hyperprompt_report(run):
    flags, model_dir = run
    assert cli.main(["report", *flags, "--num_examples=6"]) == 0
    report = json.loads((model_dir / "report" / "report.json").read_text())
    assert list(report["runs"]) == ["Task Prompt (run)"]
    mass = report["attention_mass"]["encoder"]  # the input prompt's 3 positions
    assert set(mass) == {*report["tasks"], "average"} and 0 < mass["average"][0] < 1
    assert "decoder" not in report["attention_mass"]
    saved = sources.read(str(model_dir), "hyperprompt", T5Config(
        vocab_size=384, emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
        num_encoder_layers=1, num_decoder_layers=1))
    norms = np.linalg.norm(saved["conditioner/task_embedding"].load(), axis=-1)
    for task_id, task in enumerate(report["tasks"]):  # each task's examples carry its id
        assert report["method"]["task_norm"][task] == pytest.approx(float(norms[task_id]),
                                                                     rel=1e-6)


def test_registry_checks_the_contract():
    assert registered()["task_prompt_contract_test"].cls is TaskPrompt

    class Incomplete(nn.Module):
        num_tasks: int = 2

    with pytest.raises(TypeError, match="Incomplete does not fulfil the method contract: it "
                                        "lacks per_task, min_feature_lengths, "
                                        "param_groups, parameter_count, "
                                        "init_from_backbone, label"):
        check_contract(Incomplete)
    with pytest.raises(ValueError, match="'vanilla' is taken by Vanilla"):
        register("vanilla", TaskPrompt)
