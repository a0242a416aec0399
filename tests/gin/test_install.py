"""The gin files ship as data inside the package (hyperprompt/gin/): `import gin` from the
checkout is gin-config, and editable and regular installs find every gin file."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import gin

from hyperprompt import cli

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(REPO_ROOT, "hyperprompt", "gin")
# Prints the gin folder and every gin file the CLI's search path finds (relative to it).
LIST_GIN_FILES = ("import os; from hyperprompt import cli; r = cli.gin_root(); print(r); "
                  "print(*sorted(os.path.relpath(os.path.join(d, f), r) for d, _, fs in "
                  "os.walk(r) for f in fs if f.endswith('.gin')), sep='\\n')")


def gin_files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files if f.endswith(".gin"))


def run_python(code: str, cwd: str, **env) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_gin_from_the_checkout_is_gin_config():
    # `python -c` puts the working directory first on sys.path: a top-level gin/ package
    # there would be imported instead, and gin.clear_config would not exist.
    printed = run_python("import gin; gin.clear_config(); print(gin.__file__)", REPO_ROOT)
    assert printed == [gin.__file__]


def test_a_script_in_the_checkout_parses_a_composed_experiment(monkeypatch):
    """A script or notebook run from the checkout has it first on sys.path, where gin's
    package-path reader takes the top-level benchmarks/ (step-time scripts) for the gin
    folder benchmarks/ and fails, unless the CLI's folders come first."""
    monkeypatch.syspath_prepend(REPO_ROOT)
    monkeypatch.chdir(REPO_ROOT)
    try:
        cli.parse_gin(["models/t5_1_1_tiny.gin", "methods/vanilla.gin",
                       "benchmarks/glue_mtl.gin"], [], [])
        assert gin.query_parameter("MIXTURE_OR_TASK_NAME/macro.value") == "glue_mtl"
    finally:
        gin.clear_config()


def test_every_include_resolves_in_the_gin_folder():
    root = cli.gin_root()
    assert gin_files(root) == gin_files(SOURCE)
    assert {"experiments/quickstart.gin", "models/t5_1_1_base.gin", "runs/train.gin",
            "benchmarks/glue_mtl.gin", "methods/vanilla.gin"} <= set(gin_files(root))
    for name in gin_files(root):
        with open(os.path.join(root, name)) as f:
            for include in re.findall(r"^include '([^']+)'", f.read(), re.M):
                assert os.path.exists(os.path.join(root, include)), (name, include)


def test_regular_install_ships_every_gin_file(tmp_path):
    """The wheel `pip install .` would install: every gin file under hyperprompt/gin, found
    by the CLI from the installed copy; no top-level gin package."""
    src = tmp_path / "src"
    for name in ("hyperprompt", "tasks"):
        shutil.copytree(os.path.join(REPO_ROOT, name), src / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO_ROOT, "setup.py"), src)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").iterdir()
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        assert not [n for n in z.namelist() if n.split("/")[0] in ("gin", "gin.py")]
        z.extractall(site)
    root, *found = run_python(LIST_GIN_FILES, str(tmp_path), PYTHONPATH=str(site))
    assert root == str(site / "hyperprompt" / "gin")
    assert found == gin_files(SOURCE)
