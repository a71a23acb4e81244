"""The layer order is a test: pyproject's `[tool.importlinter]` contracts hold on the installed package.

ground → model/memory/speech/fusion → tools → orchestration → flows → evals/finetune → cli/ui/serve: a
module that imports from a layer above its own fails here with import-linter's report, which names the
importing line. The installed package maps the top-level folders tools/, evals/, ui/ and prompts/ into
`mmagent` (an editable install does it with an import hook that import-linter's static scan cannot
follow), so the test lays the package out as installed — symbolic links in a temporary folder — and
lints that.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(dest: Path) -> Path:
    """`dest/mmagent`: the package as installed, every entry a link to where the import system finds it."""
    package = Path(importlib.util.find_spec("mmagent").submodule_search_locations[0])
    tree = dest / "mmagent"
    tree.mkdir()
    for entry in package.iterdir():
        if entry.name != "__pycache__":
            (tree / entry.name).symlink_to(entry)
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name in mapped:
        if name.count(".") == 1:  # mmagent.tools, mmagent.evals, ...: wherever the install put them
            location = Path(importlib.util.find_spec(name).submodule_search_locations[0])
            link = tree / name.split(".")[1]
            if not link.exists():
                link.symlink_to(location)
    return dest


def lint(tree: Path) -> subprocess.CompletedProcess:
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def test_imports_follow_the_layer_order(tmp_path):
    _need_import_linter()
    result = lint(installed_layout(tmp_path))
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"a wrong-way import (fix it by moving the shared helper down):\n{report}"
    assert "Contracts: 2 kept, 0 broken." in report, report


def test_a_wrong_way_import_fails(tmp_path):
    """The contract can fail: a tool that imports a flow is reported with the offending line."""
    _need_import_linter()
    tree = installed_layout(tmp_path)
    tools = tree / "mmagent" / "tools"
    target = tools.resolve()
    tools.unlink()
    tools.mkdir()
    for entry in target.iterdir():
        if entry.name != "__pycache__":
            (tools / entry.name).symlink_to(entry)
    (tools / "upward.py").write_text("from mmagent.flows import base\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "mmagent.tools.upward -> mmagent.flows.base" in result.stdout, result.stdout


def _need_import_linter() -> None:
    """Skip locally without import-linter; in CI a missing test extra fails (it must not hide the contracts)."""
    import importlib.util

    from conftest import missing

    if importlib.util.find_spec("importlinter") is None:
        missing("import-linter is not installed: pip install 'mmagent[test]'")
