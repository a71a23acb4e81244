"""The Evals page reads only the eval-runs root the server was started with (issue 16: no surface reads a
server path named by a client). Runs are small results.json files written by the test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("streamlit")


def write_run(folder: Path, suite: str, f1: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(
        {"suite": suite, "count": 3, "sections": {"squad": {"metrics": {"f1": f1}, "ci": {}}}}))
    return folder


def page() -> None:
    from mmagent.ui.eval_page import render

    render()


def test_the_page_lists_only_runs_under_the_configured_root_and_asks_the_browser_for_no_path(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "served-runs"
    inside = write_run(root / "squad_mini" / "base", "squad_mini", 50.0)
    secret = write_run(tmp_path / "elsewhere" / "private", "private_suite", 99.0)
    (root / "link-out").symlink_to(secret.parent, target_is_directory=True)  # a way out of the root
    write_run(tmp_path / "eval-runs" / "cwd-run", "cwd_suite", 10.0)  # the old default folder, not configured
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMAGENT_UI_EVAL_RUNS", str(root))

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.text_input) == 0  # no field where a client could type a server path
    assert at.selectbox[0].options == ["squad_mini · base (3 examples)"]  # not private_suite, not cwd_suite
    assert at.selectbox[0].value == str(inside.resolve())
    from mmagent.ui.plain import plain

    assert plain(str(root.resolve())) in at.caption[0].value
    assert at.dataframe[0].value["value"].tolist() == [50.0]


def test_without_a_setting_the_root_is_eval_runs_in_the_working_directory(tmp_path, monkeypatch):
    from mmagent.ui.eval_page import find_runs, runs_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MMAGENT_UI_EVAL_RUNS", raising=False)
    assert runs_root() == (tmp_path / "eval-runs").resolve()
    run = write_run(tmp_path / "eval-runs" / "a" / "base", "a", 1.0)
    (tmp_path / "eval-runs" / "escape").symlink_to(tmp_path, target_is_directory=True)
    write_run(tmp_path / "outside", "outside", 2.0)
    assert [r.path for r in find_runs(runs_root())] == [run.resolve()]
    assert os.environ.get("MMAGENT_UI_EVAL_RUNS") is None
