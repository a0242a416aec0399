"""launch/sweep.py: one command per cell, collection of hand-written run logs, the heatmap."""

import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "launch", "sweep.py")
SPEC = importlib.util.spec_from_file_location("sweep", SCRIPT)
sweep = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(sweep)  # launch/ is a folder of scripts, not a package

GRID = ["--grid", "HYPERPROMPT_LENGTH=4,8", "--grid", "HYPERPROMPT_BOTTLENECK=8,16"]


def eval_record(step, copy, count, accuracy, f1):
    return {"kind": "eval", "step": step, "eval/synthetic_copy/exact_match": copy,
            "eval/synthetic_count/exact_match": count, "eval/mrpc/accuracy": accuracy,
            "eval/mrpc/f1": f1}


def write_log(model_dir, records, cut_line=False):
    os.makedirs(model_dir)
    with open(os.path.join(model_dir, "train_log.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
        if cut_line:
            f.write('{"kind": "eval", "step": 9')  # a kill mid-write


def test_dry_run_prints_the_16_default_commands(tmp_path, capsys):
    root = tmp_path / "sweep"
    assert sweep.main(["--root", str(root), "--dry_run", "--gin.TRAIN_STEPS=600"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 16
    exe = sweep.hyperprompt_executable()
    assert lines[0] == (f"{exe} train --gin_file=experiments/hyperprompt_sweep.gin "
                        f"--gin.TRAIN_STEPS=600 --gin.HYPERPROMPT_LENGTH=4 "
                        f"--gin.HYPERPROMPT_BOTTLENECK=8 \"--gin.MODEL_DIR='{root}/"
                        f"HYPERPROMPT_LENGTH=4_HYPERPROMPT_BOTTLENECK=8'\"")
    assert lines[-1].endswith("HYPERPROMPT_LENGTH=32_HYPERPROMPT_BOTTLENECK=64'\"")
    cells = {(line.split("--gin.HYPERPROMPT_LENGTH=")[1].split()[0],
              line.split("--gin.HYPERPROMPT_BOTTLENECK=")[1].split()[0]) for line in lines}
    assert cells == {(length, b) for length in ("4", "8", "16", "32")
                     for b in ("8", "16", "32", "64")}
    assert len({line.split("MODEL_DIR=")[1] for line in lines}) == 16
    assert not root.exists()


@pytest.mark.parametrize("grid, message", [
    (["HYPERPROMPT_LENGTH=4,8"], "exactly two --grid macros"),
    (["HYPERPROMPT_LENGTH", "B=1"], "write MACRO=v1,v2"),
    (["A=1,2", "A=3"], "--grid A is given twice"),
])
def test_bad_grid(grid, message):
    with pytest.raises(ValueError, match=message):
        sweep.parse_grid(grid)


def test_unknown_macro_fails_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_cell", lambda command: pytest.fail("ran a cell"))
    code = sweep.main(["--root", str(tmp_path), "--grid", "HYPERPROMPT_LENGHT=4,8",
                       "--grid", "HYPERPROMPT_BOTTLENECK=8"])
    assert code == 2
    assert "HYPERPROMPT_LENGHT sets a macro that no gin file uses; did you mean " \
           "HYPERPROMPT_LENGTH" in capsys.readouterr().err


def test_runs_unfinished_cells_and_reports_failures(tmp_path, monkeypatch):
    done = sweep.cell_dir(str(tmp_path), {"HYPERPROMPT_LENGTH": "4",
                                          "HYPERPROMPT_BOTTLENECK": "8"})
    os.makedirs(done)
    open(os.path.join(done, "results.json"), "w").close()
    ran = []

    def run_cell(command):
        ran.append(command[-1])
        return 1 if "LENGTH=8_" in command[-1] else 0

    monkeypatch.setattr(sweep, "run_cell", run_cell)
    assert sweep.main(["--root", str(tmp_path), *GRID]) == 1  # two cells failed
    assert [r.split("LENGTH=")[1].rstrip("'") for r in ran] == [
        "4_HYPERPROMPT_BOTTLENECK=16", "8_HYPERPROMPT_BOTTLENECK=8",
        "8_HYPERPROMPT_BOTTLENECK=16"]


def test_collect_takes_each_cells_last_eval_and_its_parameter_count(tmp_path):
    root = str(tmp_path)
    cell = lambda length, b: sweep.cell_dir(root, {"HYPERPROMPT_LENGTH": length,
                                                   "HYPERPROMPT_BOTTLENECK": b})
    train = {"kind": "train", "step": 100, "loss": 0.5}
    write_log(cell("4", "8"), [train, eval_record(50, 1, 2, 3, 4),
                               eval_record(100, 80, 100, 70, 50)], cut_line=True)
    write_log(cell("4", "16"), [eval_record(100, 90, 100, 90, 90)])
    write_log(cell("8", "8"), [train])  # no eval yet
    # cell ("8", "16") was never started
    json_path, png_path = tmp_path / "out" / "s.json", tmp_path / "s.png"
    assert sweep.main(["--root", root, "--collect", *GRID, "--json", str(json_path),
                       "--png", str(png_path)]) == 0
    summary = json.loads(json_path.read_text())
    # Tasks weigh equally, a task's metrics are averaged first: (80 + 100 + (70+50)/2) / 3.
    assert summary["average"] == [[80.0, pytest.approx(280 / 3)], [None, None]]
    assert summary["cells"][0]["tasks"] == {"synthetic_copy": {"exact_match": 80},
                                            "synthetic_count": {"exact_match": 100},
                                            "mrpc": {"accuracy": 70, "f1": 50}}
    assert [c["step"] for c in summary["cells"]] == [100, 100, None, None]
    # Closed form at d = H*Dh = 32, 2+2 layers, 4 tasks, t' = 32, t = 28, both stacks:
    # 4*l*32 prompts + 4*32 task embeddings + 2 stacks * (2*32 layer embeddings
    # + 2*32*28 + 28*28 (h_t) + 2*28*(32*b + b*32) (H_k, H_v)).
    assert summary["parameters"] == [[63264, 120608], [63776, 121120]]
    assert summary["rows"] == {"HYPERPROMPT_LENGTH": ["4", "8"]}
    assert summary["columns"] == {"HYPERPROMPT_BOTTLENECK": ["8", "16"]}
    assert 0 < png_path.stat().st_size < 200_000


def test_any_two_macros_of_any_experiment(tmp_path, capsys):
    """A vanilla experiment over two run macros: commands carry both; vanilla adds no
    parameters."""
    grid = ["--grid", "TRAIN_STEPS=100,200", "--grid", "BATCH_SIZE=8,16,32"]
    flags = ["--root", str(tmp_path), "--gin_file=experiments/quickstart.gin", *grid]
    assert sweep.main([*flags, "--dry_run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("--gin.TRAIN_STEPS=")[1].split("'")[0] for line in lines] == [
        "100 --gin.BATCH_SIZE=8 \"--gin.MODEL_DIR=", "100 --gin.BATCH_SIZE=16 \"--gin.MODEL_DIR=",
        "100 --gin.BATCH_SIZE=32 \"--gin.MODEL_DIR=", "200 --gin.BATCH_SIZE=8 \"--gin.MODEL_DIR=",
        "200 --gin.BATCH_SIZE=16 \"--gin.MODEL_DIR=", "200 --gin.BATCH_SIZE=32 \"--gin.MODEL_DIR="]
    write_log(sweep.cell_dir(str(tmp_path), {"TRAIN_STEPS": "200", "BATCH_SIZE": "16"}),
              [eval_record(200, 10, 20, 30, 40)])
    assert sweep.main([*flags, "--collect"]) == 0
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["average"] == [[None, None, None], [None, pytest.approx(65 / 3), None]]
    assert summary["parameters"] == [[0] * 3] * 2
    assert (tmp_path / "sweep.png").stat().st_size > 0
