"""The layout the user asked for: the top level, and what each package may import."""
import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"caffe_models", "dec", "data_prep", "docker", "tests", "Makefile", "README.md",
             ".ci", ".gitignore", "requirements.in", "requirements.txt", "pyproject.toml"}


def imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_top_level_is_the_users_list():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked, "not a git checkout"
    assert {path.split("/")[0] for path in tracked} <= TOP_LEVEL


def test_data_prep_never_imports_dec():
    offenders = [f"{path.relative_to(REPO)}: {name}"
                 for path in sorted((REPO / "data_prep").rglob("*.py"))
                 for name in imported_modules(path)
                 if name == "dec" or name.startswith("dec.")]
    assert offenders == []


def test_importing_the_packages_imports_no_caffe():
    """Caffe is imported where a step runs it, never at import time: the fast
    tests and `python -m data_prep` work before Caffe is built."""
    names = [m.name for package in ("data_prep", "dec")
             for m in pkgutil.walk_packages([str(REPO / package)], prefix=package + ".")]
    assert "data_prep.db" in names and "dec.cluster" in names and "dec.caffenet.train" in names
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'caffe' or m.startswith('caffe.')))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
