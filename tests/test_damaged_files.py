"""Damaged run files: skipped log lines, a truncated registry, damaged checkpoints, and
writes that a kill cannot leave half done. Each gives one line naming the file."""

import gc
import shutil
import sys
import types
import warnings

import pytest

from hyperprompt import cli, data, startup
from hyperprompt.files import atomic_write
from hyperprompt.run_log import LOG_FILE, RunLog


def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def test_log_skips_counts_and_warns_about_unreadable_lines(tmp_path):
    lines = [b'{"kind": "train", "step": 1, "loss": 1.0}', b'{"kind": "train", "st\xff\xfe',
             b'{"kind": "train", "loss": 2.0}', b'[1, 2]', b'{"kind": "train", "step": 2, '
             b'"loss": 0.5}', b'{"kind": "eval", "step": "3"}', b'{"kind": "train", "step": 3,']
    (tmp_path / LOG_FILE).write_bytes(b"\n".join(lines))
    with pytest.warns(UserWarning, match=r"skipped 5 unreadable line\(s\) of .*train_log.jsonl "
                                         r"\(line 2, 3, 4, 6, 7: cut short, not UTF-8"):
        log = RunLog(str(tmp_path), 10)
    assert [r["step"] for r in log.records] == [1, 2]
    assert (tmp_path / LOG_FILE).read_text().count("\n") == 2  # the resume drops them


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"old": 1}')
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(str(path)) as f:
            f.write('{"new": ')
            raise KeyboardInterrupt  # a kill mid-write
    assert path.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left


def copy(trained_run, tmp_path):
    shutil.copytree(trained_run, tmp_path / "run")
    return tmp_path / "run"


def test_truncated_registry_without_a_recorded_one_is_one_line(tmp_path, capsys):
    (tmp_path / data.REGISTRY_FILE).write_text('{"tasks": ["synthetic_copy", "synth')
    code, err = run_cli(["eval", "--gin_file=experiments/quickstart.gin",
                         f"--gin.MODEL_DIR='{tmp_path}'"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    assert f"{tmp_path / data.REGISTRY_FILE} is damaged (JSONDecodeError: " in err[0]
    assert "write it back as {\"tasks\": [task names in task-id order]}, or delete it and " \
           "rerun `hyperprompt train`" in err[0]


def test_truncated_registry_is_rebuilt_from_the_checkpoint(tmp_path, capsys, trained_run,
                                                           small_run_flags):
    run = copy(trained_run, tmp_path)
    (run / data.REGISTRY_FILE).write_text('{"tasks": ["synthetic_copy", "synth')
    # a resume at the end (nothing to train) rewrites it from the checkpoint's record
    code, err = run_cli(["train", *small_run_flags, f"--gin.MODEL_DIR='{run}'",
                         "--gin.TRAIN_STEPS=2"], capsys)
    assert code == 0, err
    assert any("task_registry.json is damaged; using the tasks its latest checkpoint "
               "recorded: ['synthetic_copy'," in line for line in err), err
    assert data.load_registry(str(run)) == data.task_registry("synthetic_mtl")


def test_registry_is_not_rewritten_at_every_start(tmp_path, capsys, trained_run,
                                                  small_run_flags):
    run = copy(trained_run, tmp_path)
    before = (run / data.REGISTRY_FILE).stat()
    assert cli.main(["train", *small_run_flags, f"--gin.MODEL_DIR='{run}'",
                     "--gin.TRAIN_STEPS=2"]) == 0
    after = (run / data.REGISTRY_FILE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def truncate_arrays(run):
    files = [p for p in (run / "checkpoints" / "2").rglob("*") if p.is_file()
             and p.parent.name == "d" and p.parent.parent.name.startswith("ocdbt")]
    assert files
    for path in files:
        path.write_bytes(path.read_bytes()[:10])


def missing_metadata(run):
    (run / "checkpoints" / "2" / "default" / "_METADATA").unlink()


@pytest.mark.parametrize("damage, message", [
    (truncate_arrays, "checkpoints/2/default/: Requested byte range"),
    (missing_metadata, "checkpoint step 2 cannot be read: {run}/checkpoints/2/default/_METADATA "
                       "is missing; delete {run}/checkpoints/2 to resume from an earlier"),
])
@pytest.mark.parametrize("command", ["eval", "train"])
def test_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, trained_run,
                                                        small_run_flags, damage, message,
                                                        command):
    run = copy(trained_run, tmp_path)
    damage(run)
    code, err = run_cli([command, *small_run_flags, f"--gin.MODEL_DIR='{run}'",
                         "--gin.TRAIN_STEPS=4"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    assert message.format(run=run) in err[0], err
    assert "bound method" not in err[0] and "NoneType" not in err[0]


def test_restore_noise_is_dropped_and_other_errors_kept(capsys, monkeypatch):
    monkeypatch.setattr(sys, "__unraisablehook__",
                        lambda u: print(f"reported: {u.exc_value}", file=sys.stderr))
    for error in (RuntimeError("Event loop is closed"), RuntimeError("something else"),
                  Exception("Encountered error while reading array index: (slice(0, 32, 1),")):
        startup._drop_restore_noise(types.SimpleNamespace(exc_value=error))
    assert capsys.readouterr().err == "reported: something else\n"


def test_unawaited_restore_reads_are_dropped_and_other_warnings_kept(capsys, monkeypatch):
    async def read_chunk():  # what a failed orbax restore leaves for the garbage collector
        return None

    def command(name, args):
        read_chunk()  # created, never awaited: CPython warns when it is collected
        gc.collect()
        warnings.warn("another library's warning", RuntimeWarning, stacklevel=1)

    monkeypatch.setattr(cli, "run", command)
    code, err = run_cli(["eval", "--gin_file=experiments/quickstart.gin"], capsys)
    assert code == 0 and len(err) == 2 and "another library's warning" in err[0], err
