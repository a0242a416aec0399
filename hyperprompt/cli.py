"""`hyperprompt train|eval|infer|convert|report` with t5x's flags.

  hyperprompt train --gin_file=experiments/quickstart.gin --gin.MODEL_DIR="'runs/qs'"
  hyperprompt eval  --gin_file=experiments/quickstart.gin --gin.MODEL_DIR="'runs/qs'"
  hyperprompt infer --gin_file=experiments/quickstart.gin --gin.MODEL_DIR="'runs/qs'"
  hyperprompt report --gin_file=experiments/quickstart.gin \
    --gin_file=methods/hyperprompt_global.gin --gin.MODEL_DIR="'runs/hp'" \
    [--compare_model_dir=runs/qs]     # attention mass and entropy -> runs/hp/report/
  hyperprompt report --select --gin_file=experiments/quickstart.gin --gin.MODEL_DIR="'runs/qs'"
  hyperprompt report --params [--gin_file=...]   # task-conditioning parameters per size
  hyperprompt study --gin_file=studies/synthetic.gin --root=runs/study [--jobs=2]
  hyperprompt report --paper hypergrid --row ours-11b --gin.MODEL_DIR="'runs/g'"  # vs paper
  hyperprompt bank --gin_file=... --gin.MODEL_DIR="'runs/pt'" --bank_dir=prompts

`--gin_file` may repeat; `--gin.NAME=VALUE` binds a macro or parameter;
`--gin_search_paths=a,b` adds folders to look for gin files in (the installed
`hyperprompt/gin` folder is always searched). Bad input exits with status 2 and
one line naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.resources
import inspect
import os
import re
import sys
import tokenize
import traceback
import warnings
from collections.abc import Sequence

import gin

from hyperprompt import distributed, macros, startup
from hyperprompt.errors import Preempted, Stopped, TrainingDiverged, UsageError

COMMANDS = ("train", "eval", "infer", "convert", "report", "study", "bank")
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75  # sysexits EX_TEMPFAIL: "try again" — schedulers requeue on it


def gin_root() -> str:
    """The installed gin folder (models/, methods/, runs/, benchmarks/, experiments/).

    Plain data inside the package, not a package itself: a top-level `gin/` package would
    shadow gin-config for any script run from the checkout.
    """
    return str(importlib.resources.files("hyperprompt") / "gin")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="hyperprompt", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_search_paths", action="append", default=[],
                        help="comma-separated folders searched for gin files")
    convert = parser.add_argument_group("convert", "hyperprompt convert --src PATH|HUB_ID "
                                        "--dst FOLDER [--gin_file=models/t5_1_1_base.gin]; "
                                        "without a model gin file the size comes from the "
                                        "checkpoint, and FOLDER gets model.gin")
    convert.add_argument("--from", dest="from_format", default="auto",
                         choices=("auto", "hf", "t5x", "t5x_orbax", "hyperprompt"))
    convert.add_argument("--to", dest="to_format", default="hyperprompt",
                         choices=("hyperprompt", "hf"))
    convert.add_argument("--src", help="checkpoint to read: a folder, or a Hugging Face hub "
                         "id such as google/t5-v1_1-base")
    convert.add_argument("--dst", help="folder to write")
    report = parser.add_argument_group("report", "attention mass/entropy of MODEL_DIR's latest "
                                       "checkpoint (default), --select or --params")
    report.add_argument("--compare_model_dir", help="a second run (e.g. vanilla) whose attention "
                        "entropy is plotted beside MODEL_DIR's")
    report.add_argument("--num_examples", type=int, default=100,
                        help="eval examples per task (default 100, as the paper)")
    report.add_argument("--select", action="store_true",
                        help="each task's best validation step from MODEL_DIR/train_log.jsonl")
    report.add_argument("--params", action="store_true",
                        help="task-conditioning parameters per method at every model size")
    study = parser.add_argument_group("study", "hyperprompt study --gin_file=studies/<name>.gin "
                                      "--root FOLDER: every method x seed of the study")
    study.add_argument("--root", help="folder holding one MODEL_DIR per run of the study")
    study.add_argument("--jobs", type=int, default=1, help="runs trained at once (default 1)")
    study.add_argument("--dry_run", action="store_true", help="print the commands still to run")
    study.add_argument("--collect", action="store_true",
                       help="only tabulate and plot the runs that have finished")
    report.add_argument("--paper", help="MODEL_DIR's last evaluation beside this paper's row "
                        "(a file of hyperprompt/paper_tables/; a wrong name lists them)")
    report.add_argument("--row", help="the paper row's id (a wrong one lists them)")
    bank = parser.add_argument_group("bank", "export MODEL_DIR's prompts (Prompt Tuning) or "
                                     "attention module (ATTEMPT) into a prompt bank")
    bank.add_argument("--bank_dir", help="the prompt bank folder to write into")
    bank.add_argument("--bank_tasks", default="", help="comma-separated tasks (default: all)")
    bank.add_argument("--bank_name", help="the entry's name (default: the task's name)")
    multi = parser.add_argument_group("multi-process", "one process per host (or GPU), each "
                                      "running the same command (launch/README.md)")
    multi.add_argument("--multiprocess", action="store_true",
                       help="read the settings below from the cluster (TPU pod, SLURM, MPI)")
    multi.add_argument("--coordinator_address", help="HOST:PORT of process 0")
    multi.add_argument("--num_processes", type=int)
    multi.add_argument("--process_id", type=int)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bank" and not args.bank_dir:
        raise UsageError("bank needs --bank_dir=FOLDER (the prompt bank to write into).")
    if args.command == "convert" and not (args.src and args.dst):
        raise UsageError("convert needs --src PATH|HUB_ID and --dst FOLDER.")
    if args.command == "study" and not args.root:
        raise UsageError("study needs --root FOLDER (one run per cell is trained under it).")
    if args.jobs < 1:
        raise UsageError(f"--jobs={args.jobs}: give 1 or more runs at once.")
    bindings = []
    for arg in rest:
        match = re.fullmatch(r"--gin\.([^=]+)=(.*)", arg, re.S)
        if not match:
            raise UsageError(f"unrecognised argument {arg!r}; gin bindings are written "
                             f"--gin.NAME=VALUE (e.g. --gin.TRAIN_STEPS=100).")
        bindings.append(f"{match.group(1)} = {match.group(2)}")
    if not args.gin_file and args.command != "convert" and not (
            args.command == "report" and (args.params or args.paper)):
        raise UsageError("no --gin_file given; start from --gin_file=experiments/quickstart.gin.")
    return args, bindings


# Macros that run files reference but leave for the user to set.
REQUIRED_MACROS = ("MODEL_DIR", "MIXTURE_OR_TASK_NAME", "TASK_FEATURE_LENGTHS")


def _defined_macros() -> set[str]:
    return {name for name, selector in gin.config._CONFIG if selector == "gin.macro"}


def _one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _check_macro_bindings(bindings: Sequence[str]) -> None:
    """A --gin.NAME=... for a macro no gin file uses is a typo: name the closest ones."""
    known = _defined_macros() | set(REQUIRED_MACROS)
    for binding in bindings:
        name = binding.split("=", 1)[0].strip()
        if "." in name or "/" in name or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = (f"did you mean {', '.join(close)}?" if close
                else f"known: {', '.join(sorted(known))}")
        raise UsageError(f"--gin.{name} sets a macro that no gin file uses; {hint}")


def parse_gin(files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str]) -> None:
    """Load gin files, then bindings; unknown names and missing files become UsageError."""
    gin.clear_config()
    roots = [gin_root(), *(p for s in search_paths for p in s.split(",") if p)]
    # These folders before the working directory (''): gin's package-path reader, tried for a
    # relative path in the working directory, crashes when the path's first folder is a
    # namespace package on sys.path (the checkout's benchmarks/ for a script run there).
    gin.config._LOCATION_PREFIXES[:] = [*roots, ""]
    # A file that exists relative to the working directory is that one.
    files = [os.path.abspath(path) if os.path.exists(path) else path for path in files]
    for path in files:
        if not (os.path.exists(path) or any(os.path.exists(os.path.join(r, path)) for r in roots)):
            close = difflib.get_close_matches(path, _gin_files(roots), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else \
                "e.g. experiments/quickstart.gin"
            raise UsageError(f"gin file {path!r} not found in {', '.join(roots)}; {hint}")
    for path in files:
        try:
            gin.parse_config_file(path)
        except GIN_ERRORS as e:
            raise _gin_error(f"gin file {path}", e) from None
    _check_macro_bindings(bindings)
    for binding in bindings:
        try:
            gin.parse_config(binding)
        except GIN_ERRORS as e:
            name, value = (part.strip() for part in binding.split("=", 1))
            raise _gin_error(f"--gin.{name}={value}", e) from None


# What gin raises for a file or binding it cannot parse or apply (OSError: an include that
# is not found; tokenize.TokenError: an unclosed bracket at the end of a file).
GIN_ERRORS = (ValueError, KeyError, SyntaxError, TypeError, ImportError, OSError,
              tokenize.TokenError)
LITERALS = ("values are Python literals: 100, 1e-3, 'text' (quoted), None, True, "
            "{'inputs': 64}, or @configurable() / %MACRO references")


def _gin_error(source: str, error: Exception) -> UsageError:
    """One line: where (the file or flag, and gin's 'In file ..., line N'), what, the fix."""
    if isinstance(error, tokenize.TokenError):  # ('EOF in multi-line statement', (line, col))
        lines = [f"{error.args[0]} (line {error.args[1][0]}): a bracket or quote is not closed"]
    else:
        lines = [line.strip() for line in str(error).strip().splitlines()] or [
            type(error).__name__]
    # gin quotes some values as Python reprs ("<ast.Name object at 0x7f...>")
    what = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "a value that is not a literal", lines[0])
    where = next((f" ({line})" for line in lines[1:] if line.startswith("In file")), "")
    hint = _parameter_hint(what) or (f"; {LITERALS}" if isinstance(
        error, (SyntaxError, tokenize.TokenError)) or "parse" in what or "literal" in what
        else "")
    return UsageError(f"{source}: {what}{where}{hint}")


def _gin_files(roots: Sequence[str]) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for root in roots
                  for d, _, files in os.walk(root) for f in files if f.endswith(".gin"))


def _parameter_hint(message: str) -> str:
    """' Did you mean X?' for gin's "Configurable 'c' doesn't have a parameter named 'p'"."""
    match = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", message)
    if not match:
        return ""
    try:
        fn = gin.get_configurable(match.group(1))
        names = list(inspect.signature(getattr(fn, "__wrapped__", fn)).parameters)
    except (ValueError, TypeError):
        return ""
    close = difflib.get_close_matches(match.group(2), names, n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def _macro(name: str):
    try:
        return gin.query_parameter(f"{name}/macro.value")
    except ValueError:
        raise UsageError(f"macro {name} is not set; pass --gin.{name}=...") from None


def run(command: str, args: argparse.Namespace | None = None) -> int | None:
    """Run a command with the parsed gin config; a non-zero exit status, or None."""
    from hyperprompt import checkpoints
    from hyperprompt import eval as eval_lib
    from hyperprompt import infer as infer_lib
    from hyperprompt import train as train_lib

    if command == "report":
        _report(args)
        return
    if command == "study":
        from hyperprompt.study import command as study_lib

        study = _macro("STUDY")
        if isinstance(study, gin.config.ConfigurableReference):
            study = study.scoped_configurable_fn()
        return study_lib.main(study, args.root, args.jobs, args.dry_run, args.collect)
    if command == "bank":
        from hyperprompt import bank_export

        backbone = _bound("INITIAL_CHECKPOINT_PATH/macro.value") or "trained from scratch"
        for line in bank_export.export(_macro("MODEL_DIR"), args.bank_dir, str(backbone),
                                       [t for t in args.bank_tasks.split(",") if t],
                                       args.bank_name):
            print(line)
        return
    if command == "convert":
        from hyperprompt.convert import model_config
        from hyperprompt.convert import run as convert_lib

        model = _bound("MODEL/macro.value")  # None: the checkpoint's own config
        path = convert_lib.convert(args.src, args.dst, args.from_format, args.to_format, model)
        print(f"converted {args.src} -> {path}")
        if args.to_format == "hyperprompt":
            print(f"model gin file: {os.path.join(args.dst, model_config.GIN_FILE)} (pass it "
                  f"where a models/*.gin file goes)")
        return
    for name in REQUIRED_MACROS:
        _macro(name)
    if command == "train":
        results = gin.get_configurable(train_lib.train)(config_text=gin.config_str())
        model_dir = _macro("MODEL_DIR")
        if results:
            step = checkpoints.latest_step(model_dir)
            eval_lib.print_table(results, title=f"validation at checkpoint step {step}")
        print(f"checkpoints: {os.path.join(model_dir, 'checkpoints')}\n"
              f"tensorboard: tensorboard --logdir {os.path.join(model_dir, 'tensorboard')}\n"
              f"plot:        {os.path.join(model_dir, 'training_curves.png')}\n"
              f"config:      {os.path.join(model_dir, 'config.gin')}")
    elif command == "eval":
        results = gin.get_configurable(eval_lib.evaluate_checkpoint)()
        eval_lib.print_table(results, title="evaluation")
    elif path := gin.get_configurable(infer_lib.infer)():  # None: the input file was empty
        print(f"predictions: {path}")


def _bound(selector: str, default=None):
    """The value gin binds to `selector` (macros resolved), else `default`."""
    try:
        value = gin.query_parameter(selector)
    except (ValueError, KeyError):  # not bound, or no configurable of that name
        return default
    if isinstance(value, gin.config.ConfigurableReference):
        return value.scoped_configurable_fn()
    return value


def _saved_model(model_dir: str):
    """MODEL of the config.gin that `train` wrote in model_dir (replaces the gin config)."""
    path = os.path.join(model_dir, "config.gin")
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist; point --compare_model_dir at a directory "
                         f"written by `hyperprompt train`.")
    parse_gin([path], [], [])
    return _macro("MODEL").scoped_configurable_fn()


_UNBOUND = object()


def method_settings() -> dict[str, dict]:
    """{registered method: its fields that gin binds (macros resolved)}."""
    from hyperprompt.methods.base import registered

    settings = {}
    for name, entry in registered().items():
        cls = f"{entry.cls.__module__}.{entry.cls.__qualname__}"
        bound = {field: _bound(f"{cls}.{field}", _UNBOUND) for field in entry.fields()}
        settings[name] = {k: v for k, v in bound.items() if v is not _UNBOUND}
    return settings


def _report(args: argparse.Namespace) -> None:
    """`report`: the attention report of MODEL_DIR, or --params, or --select."""
    from hyperprompt.analysis import params as params_lib
    from hyperprompt.analysis import report as report_lib
    from hyperprompt.analysis import selection

    if args.params:
        settings = method_settings()
        num_tasks = _bound("NUM_TASKS/macro.value", params_lib.NUM_TASKS)
        labels = {name: method.label() for name, method in params_lib.methods(
            params_lib.CONFIGS["t5_1_1_base"], num_tasks, settings).items()}
        params_lib.print_table(params_lib.parameter_report(num_tasks, settings),
                               params_lib.describe(num_tasks, settings), labels, num_tasks)
        return
    model_dir = _macro("MODEL_DIR")
    if args.paper:
        from hyperprompt.analysis import paper_report

        report = paper_report.compare(args.paper, args.row, model_dir)
        paper_report.print_report(report, paper_report.write(report, model_dir))
        return
    if args.select:
        selection.print_selection(selection.select(model_dir), model_dir)
        return
    model = _macro("MODEL").scoped_configurable_fn()
    settings = dict(feature_lengths=_macro("TASK_FEATURE_LENGTHS"),
                    batch_size=_macro("BATCH_SIZE"), num_examples=args.num_examples,
                    split=_bound("EVAL_SPLIT/macro.value", "validation"),
                    model_parallel=_bound("MODEL_PARALLEL/macro.value", 1))
    compare = None
    if args.compare_model_dir:
        compare = (_saved_model(args.compare_model_dir), args.compare_model_dir)
    report_lib.print_summary(report_lib.attention_report(model, model_dir, compare=compare,
                                                         **settings))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from our own code as one line each; library warnings as usual."""
    if "hyperprompt" in filename:
        print(f"hyperprompt: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # From the first line: a SIGTERM/SIGINT before (or after) the training loop stops
        # with status 75 and one line too (inside it, train's PreemptionGuard checkpoints).
        with startup.stop_on_signals():
            startup.quiet_start()
            args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
            distributed.initialize(args.coordinator_address, args.num_processes,
                                   args.process_id, detect=args.multiprocess)
            parse_gin(args.gin_file, bindings, args.gin_search_paths)
            macros.check()
            with warnings.catch_warnings():  # restores showwarning on exit
                warnings.showwarning = _show_warning
                startup.ignore_unawaited_reads()
                status = run(args.command, args)
    except UsageError as e:  # gin appends "In call to configurable ..." lines: keep line one
        if startup.debugging():  # the cause's traceback (e.g. the OSError behind a write)
            traceback.print_exc()
        print(f"hyperprompt: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(f"hyperprompt: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except (Preempted, Stopped) as e:
        print(f"hyperprompt: {_one_line(e)}", file=sys.stderr)
        return EXIT_PREEMPTED
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
