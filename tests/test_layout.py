"""The installed layout: one top-level package, cheap to import, a console script."""

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["tools", "prompts", "evals", "ui"])
def test_card_folders_are_not_top_level_modules(name, tmp_path):
    # Run from an empty directory so the repository root is not on sys.path.
    result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("name", ["tools", "prompts", "evals", "ui"])
def test_card_folders_ship_inside_mmagent(name, tmp_path):
    result = subprocess.run([sys.executable, "-c", f"import mmagent.{name}"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_import_mmagent_imports_no_heavy_library(tmp_path):
    code = (
        "import sys, time, json; t = time.perf_counter(); import mmagent, mmagent.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'chromadb', 'streamlit', 'langchain_core') if m in sys.modules]; "
        "print(json.dumps({'heavy': heavy, 'seconds': time.perf_counter() - t}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["heavy"] == []
    assert report["seconds"] < 3.0  # ~0.2 s measured; generous for a loaded CI machine


def test_console_script_is_installed(tmp_path):
    result = subprocess.run(["mmagent", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0
    for verb in ("chat", "doctor", "setup"):
        assert verb in result.stdout
