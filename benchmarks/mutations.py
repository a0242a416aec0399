"""Mutation check: plant known bugs in a copy of the code and expect the tests that claim to
cover them to fail.

  python benchmarks/mutations.py            # every mutation
  python benchmarks/mutations.py adafactor  # those whose name contains 'adafactor'
  python benchmarks/mutations.py --list

Each mutation replaces exact snippets of one file (each must occur exactly once, so a
mutation that no longer applies is reported, not silently skipped) in a temporary copy of
the working tree, then runs its tests there with pytest (`-n 0 -x`); the copy is imported
ahead of the installed package. A mutation is caught when pytest reports failed tests
(exit status 1, no errors); anything else (passing tests, errors) counts as a miss. Not
part of `make test`: the HyperPrompt integration mutation alone trains for minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Mutation:
    """Each (old, new) of `edits` replaces a snippet of `path`; `tests` (pytest node ids or
    files) must then fail."""

    name: str
    path: str
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]


T5_TESTS = "tests/models/test_t5.py::"
MUTATIONS = (
    # The four bugs of issue 20.
    Mutation("hyperprompt_does_nothing", "hyperprompt/methods/hyperprompt.py",
             (("        d = embedder.features\n",
               "        return Conditioning()\n        d = embedder.features\n"),),
             ("tests/methods/test_hyperprompt_integration.py",)),
    Mutation("adafactor_misconfigured", "hyperprompt/optim.py",
             (("decay_rate=self.decay_rate,", "decay_rate=0.3,"),
              ("multiply_by_parameter_scale=self.multiply_by_parameter_scale,",
               "multiply_by_parameter_scale=False,"),
              ("clipping_threshold=self.clipping_threshold,", "clipping_threshold=None,")),
             ("tests/test_optim.py",)),
    Mutation("decoder_prefix_in_cross_attention", "hyperprompt/models/t5.py",
             (("h, h, self_mask, self_bias, cond.kv_prefix)", "h, h, self_mask, self_bias)"),
              ("h, encoded, cross_mask, None)", "h, encoded, cross_mask, None, cond.kv_prefix)")),
             (T5_TESTS + "test_decoder_kv_prefix_enters_each_layers_self_attention_only",)),
    Mutation("predictions_misaligned_with_targets", "hyperprompt/eval.py",
             (("else texts\n", "else texts\n        texts = texts[1:] + texts[:1]\n"),),
             ("tests/tasks/test_glue_run.py::test_accuracy_and_invalid_counts_of_hand_set_"
              "predictions",)),
    # Weaknesses found after the issue: injection points and settings a test left untried.
    Mutation("decoder_ignores_its_ffn_gate", "hyperprompt/models/t5.py",
             (("(h, _ffn_hook(cond))\n        y = y + _adapt(",
               "(h, None)\n        y = y + _adapt("),),
             (T5_TESTS + "test_ffn_gate_equals_gated_kernels",)),
    Mutation("encoder_ignores_its_adapter", "hyperprompt/models/t5.py",
             (("x = x + _adapt(cond, ATTENTION_POSITION, drop(h))", "x = x + drop(h)"),),
             (T5_TESTS + "test_adapter_and_norm_equal_transformed_sublayer_outputs",)),
    Mutation("adapter_norm_bias_dropped", "hyperprompt/models/t5.py",
             (("cond.adapter_norm.bias[:, position])",
               "0 * cond.adapter_norm.bias[:, position])"),),
             (T5_TESTS + "test_adapter_and_norm_equal_transformed_sublayer_outputs",)),
    Mutation("prompt_adafactor_misconfigured", "hyperprompt/methods/prompt_tuning.py",
             (('"decay_rate": 0.8', '"decay_rate": 0.3'),
              ('"clipping_threshold": 1.0', '"clipping_threshold": None')),
             ("tests/methods/test_prompt_tuning.py::test_prompts_train_with_lester_et_al_"
              "adafactor",)),
)


def copy_tree(root: str) -> str:
    """The working tree (no venv, caches, quickstart runs/) under root/repo, with ../shared
    beside it and tasks/ at hyperprompt/tasks as the editable install maps it."""
    repo = os.path.join(root, "repo")
    skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache",
                                  ".ruff_cache")
    top = lambda folder, names: skip(folder, names) | ({"runs"} if folder == REPO else set())
    shutil.copytree(REPO, repo, ignore=top)
    shared = os.path.join(os.path.dirname(REPO), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(root, "shared"))
    os.symlink(os.path.join(repo, "tasks"), os.path.join(repo, "hyperprompt", "tasks"))
    return repo


def plant(repo: str, mutation: Mutation) -> None:
    path = os.path.join(repo, mutation.path)
    with open(path) as f:
        text = f.read()
    for old, new in mutation.edits:
        if text.count(old) != 1:
            raise ValueError(f"{mutation.name}: {old!r} occurs {text.count(old)} times in "
                             f"{mutation.path}, not once.")
        text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)


def run(mutation: Mutation) -> tuple[bool, float, str]:
    """(caught, seconds, pytest's last lines). Caught: tests failed, none errored (an error,
    e.g. in a fixture, may be the copy's fault rather than the test's catch)."""
    with tempfile.TemporaryDirectory(prefix="mutation_") as root:
        repo = copy_tree(root)
        plant(repo, mutation)
        env = dict(os.environ, PYTHONPATH=repo, PYTHONDONTWRITEBYTECODE="1")
        start = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-x", "-p", "no:cacheprovider",
             *mutation.tests], cwd=repo, env=env, capture_output=True, text=True)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        caught = proc.returncode == 1 and " failed" in lines[-1] and " error" not in lines[-1]
        return caught, time.time() - start, "\n".join(lines[-3:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run the mutations whose name contains one")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.names or any(n in m.name for n in args.names)]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path} -> {' '.join(m.tests)}")
        return 0
    missed = []
    for mutation in chosen:
        caught, seconds, tail = run(mutation)
        print(f"{'caught' if caught else 'MISSED'}  {mutation.name}  ({seconds:.0f} s)\n{tail}\n",
              flush=True)
        if not caught:
            missed.append(mutation.name)
    print(f"{len(chosen) - len(missed)} of {len(chosen)} mutations caught"
          + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
