"""`hyperprompt report` end to end on tiny HyperPrompt and vanilla runs of a few steps."""

import json

import pytest

from hyperprompt import cli, data

QUICK = ["--gin_file=experiments/quickstart.gin"]
HYPERPROMPT = ["--gin_file=methods/hyperprompt_global.gin"]
SMALL = ["--gin.configs.T5Config.emb_dim=32", "--gin.configs.T5Config.mlp_dim=64",
         "--gin.configs.T5Config.num_heads=2", "--gin.configs.T5Config.head_dim=16",
         "--gin.BATCH_SIZE=8", "--gin.train_lib.train.eval_examples=0", "--gin.TRAIN_STEPS=2"]
# The compare run may differ in depth: one layer per stack compiles faster.
ONE_LAYER = ["--gin.configs.T5Config.num_encoder_layers=1",
             "--gin.configs.T5Config.num_decoder_layers=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(HyperPrompt-Global run, one-layer vanilla run), two training steps each."""
    root = tmp_path_factory.mktemp("runs")
    hp, vanilla = root / "hp", root / "vanilla"
    assert cli.main(["train", *QUICK, *HYPERPROMPT, f"--gin.MODEL_DIR='{hp}'", *SMALL]) == 0
    assert cli.main(["train", *QUICK, f"--gin.MODEL_DIR='{vanilla}'", *SMALL, *ONE_LAYER]) == 0
    return hp, vanilla


def run_cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def test_report_writes_plots_and_numbers(runs, capsys):
    hp, vanilla = runs
    code, out, _ = run_cli(["report", *QUICK, *HYPERPROMPT, f"--gin.MODEL_DIR='{hp}'", *SMALL,
                            f"--compare_model_dir={vanilla}", "--num_examples=10"], capsys)
    assert code == 0
    report_dir = hp / "report"
    for name in ("attention_mass.png", "attention_entropy.png"):
        assert (report_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(report_dir / name) in out
    report = json.loads((report_dir / "report.json").read_text())
    tasks = data.task_registry("synthetic_mtl")
    assert report["tasks"] == tasks and report["examples_per_task"] == 10
    for stack in ("encoder", "decoder"):  # placement 'both': prompts in both stacks
        mass = report["attention_mass"][stack]
        assert list(mass) == [*tasks, "average"]
        assert all(len(v) == 2 and all(0.0 < m < 1.0 for m in v) for v in mass.values())
    runs_ = report["attention_entropy_nats"]
    assert list(runs_) == ["HyperPrompt-Global (hp)", "Vanilla (vanilla)"]
    assert {r["step"] for r in report["runs"].values()} == {2}
    for by_stack, layers in zip(runs_.values(), (2, 1), strict=True):
        encoder = by_stack["encoder"]
        assert encoder["mean"] > 0 and len(encoder["per_layer_mean"]) == layers
        assert len(encoder["per_layer_head_mean"][0]) == 2  # heads
    # 10 examples of "<task>: <3..10 letters>" + EOS per task: the same tokens in both runs
    assert runs_["Vanilla (vanilla)"]["encoder"]["tokens"] == \
        runs_["HyperPrompt-Global (hp)"]["encoder"]["tokens"] > 4 * 10 * 8


def test_report_of_a_vanilla_run_names_the_problem(runs, capsys):
    _, vanilla = runs
    code, _, err = run_cli(["report", *QUICK, f"--gin.MODEL_DIR='{vanilla}'", *SMALL,
                            *ONE_LAYER], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "is a Vanilla (vanilla) run: it has no prompts, so there is no attention mass" in err[0]
    assert "pass this one as --compare_model_dir" in err[0]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "has no task_registry.json"),
    (lambda d: data.save_registry(str(d), ["synthetic_copy"]), "no checkpoint in"),
])
def test_report_without_a_checkpoint(tmp_path, capsys, make, message):
    make(tmp_path)
    code, _, err = run_cli(["report", *QUICK, *HYPERPROMPT, f"--gin.MODEL_DIR='{tmp_path}'",
                            *SMALL], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1 and message in err[0]


def test_compare_dir_without_a_config(runs, tmp_path, capsys):
    hp, _ = runs
    code, _, err = run_cli(["report", *QUICK, *HYPERPROMPT, f"--gin.MODEL_DIR='{hp}'", *SMALL,
                            f"--compare_model_dir={tmp_path}"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert f"{tmp_path}/config.gin does not exist" in err[0]


def test_glue_runs_are_read_through_their_eval_tasks(t5_vocab):
    """glue_mnli has only a train split: MNLI's matched/mismatched tasks stand in for it,
    with MNLI's task id."""
    import tensorflow_datasets as tfds

    from hyperprompt.analysis.report import eval_batches

    registry = data.task_registry("glue_mtl")
    with tfds.testing.mock_data(num_examples=2):
        batches = eval_batches(registry, {"inputs": 32, "targets": 6}, 8, "validation", 2)
    assert list(batches) == [name for name, _ in data.eval_tasks(registry, "validation")]
    for name in ("glue_mnli_matched", "glue_mnli_mismatched"):
        (batch,) = batches[name]
        assert batch["task_ids"][:2].tolist() == [registry.index("glue_mnli")] * 2
