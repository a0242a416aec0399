"""The study's cells from its spec: names, files, bindings, seeds, order, and bad specs."""

import pytest

from hyperprompt.errors import UsageError
from hyperprompt.study.spec import Study, is_binding

STUDY = Study(base=["experiments/study_synthetic.gin"],
              methods={"vanilla": ["methods/vanilla.gin"],
                       "pt": ["methods/prompt_tuning.gin", "PROMPT_LENGTH=4"]},
              seeds=[0, 7], single_tasks=["synthetic_up"],
              stages={"backbone": ["methods/vanilla.gin", "TRAIN_STEPS=9"]},
              bindings=["INITIAL_CHECKPOINT_PATH='{root}/stages/backbone'"])


def test_cells_in_order_with_their_files_and_bindings():
    cells = STUDY.cells("/r")
    assert [c.name for c in cells] == [
        "stages/backbone", "vanilla/seed_0", "vanilla/seed_7", "pt/seed_0", "pt/seed_7",
        "single/synthetic_up/seed_0", "single/synthetic_up/seed_7"]
    stage, pt7, single0 = cells[0], cells[4], cells[5]
    assert stage.gin_files == ("experiments/study_synthetic.gin", "methods/vanilla.gin")
    assert stage.bindings == ("TRAIN_STEPS=9", "SEED=0") and stage.method is None
    assert pt7.gin_files == ("experiments/study_synthetic.gin", "methods/prompt_tuning.gin")
    assert pt7.bindings == ("INITIAL_CHECKPOINT_PATH='/r/stages/backbone'", "PROMPT_LENGTH=4",
                            "SEED=7")
    assert (pt7.method, pt7.seed, pt7.task) == ("pt", 7, None)
    assert single0.gin_files == ("experiments/study_synthetic.gin", "methods/vanilla.gin")
    assert single0.bindings[-2:] == ("MIXTURE_OR_TASK_NAME='synthetic_up'", "SEED=0")
    assert (single0.method, single0.task) == ("vanilla", "synthetic_up")


@pytest.mark.parametrize("entry, binding", [
    ("methods/vanilla.gin", False), ("TRAIN_STEPS=9", True), ("a.b.c = 'x=y'", True),
    ("configs.T5Config.emb_dim=8", True), ("dir/with=sign.gin", False)])
def test_entries_are_files_or_bindings(entry, binding):
    assert is_binding(entry) == binding


@pytest.mark.parametrize("changes, message", [
    ({"reference": "hp"}, "reference method 'hp' is not among"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"seeds": []}, "distinct"),
    ({"methods": {"vanilla": [], "a b": []}}, "names a folder"),
    ({"stages": {"single": []}}, "names a folder"),
])
def test_bad_specs_name_the_fix(changes, message):
    fields = {"base": ["x.gin"], "methods": {"vanilla": []}, **changes}
    with pytest.raises(UsageError, match=message):
        Study(**fields)


def test_then_commands_and_spliced_lists(tmp_path):
    from hyperprompt.study import runner

    study = Study(base=["b.gin"], methods={"vanilla": []},
                  stages={"src": [["methods/prompt_tuning.gin", "PROMPT_LENGTH=4"],
                                  "then: bank --bank_dir={root}/bank"]})
    stage = study.cells(str(tmp_path))[0]
    assert stage.gin_files == ("b.gin", "methods/prompt_tuning.gin")
    assert stage.bindings == ("PROMPT_LENGTH=4", "SEED=0")
    assert stage.then == (f"bank --bank_dir={tmp_path}/bank",)
    train, = [runner.command(str(tmp_path), stage)]
    bank, = runner.then_commands(str(tmp_path), stage)
    assert bank == [train[0], "bank", *train[2:], f"--bank_dir={tmp_path}/bank"]
    model_dir = tmp_path / "stages" / "src"
    model_dir.mkdir(parents=True)
    (model_dir / "results.json").write_text("{}")
    assert not runner.done(str(tmp_path), stage)  # trained, not yet exported
    (model_dir / runner.THEN_DONE).write_text("")
    assert runner.done(str(tmp_path), stage)
    assert runner.dry_run(str(tmp_path), [stage]) == []
