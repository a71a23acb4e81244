"""The Evals page: reports written by `mmagent eval` (scores with CIs, plots) and a comparison of two runs.

A run is any folder holding ``results.json`` (with ``manifest.json``, ``report.md`` and ``plots/``) as
``mmagent eval run`` writes them; the page lists the runs under one root folder the server is configured
with (``$MMAGENT_UI_EVAL_RUNS``, default ``eval-runs`` in the working directory) and nothing else: a
browser never names a server path to read. Comparison is ``mmagent.evals.compare.compare_runs``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from mmagent.ui.plain import plain

from mmagent.errors import MMAgentError

MAX_DEPTH = 4


@dataclass(frozen=True)
class RunSummary:
    """One eval run folder and the headline of its results.json."""

    path: Path
    suite: str
    count: int
    metrics: dict[str, dict[str, float]]  # section -> metric -> value

    @property
    def label(self) -> str:
        return f"{self.suite} · {self.path.name} ({self.count} examples)"


def runs_root() -> Path:
    """The one folder the Evals page reads: set by whoever starts the server, never by the browser."""
    return Path(os.environ.get("MMAGENT_UI_EVAL_RUNS") or "eval-runs").expanduser().resolve()


def find_runs(root: str | Path) -> list[RunSummary]:
    """Every eval run under `root` (a few levels deep), newest first; unreadable ones, and symlinks that
    lead out of `root`, are left out."""
    root = Path(root).expanduser().resolve()
    runs, seen = [], set()
    for depth in range(MAX_DEPTH + 1):
        for found in root.glob("/".join(["*"] * depth + ["results.json"])):
            results = found.resolve()
            if not results.is_relative_to(root) or results in seen:
                continue
            seen.add(results)
            try:
                data = json.loads(results.read_text(encoding="utf-8"))
                metrics = {name: dict(s.get("metrics", {})) for name, s in data.get("sections", {}).items()}
                runs.append(RunSummary(results.parent, str(data["suite"]), int(data.get("count", 0)), metrics))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return sorted(runs, key=lambda r: (r.path / "results.json").stat().st_mtime, reverse=True)


def metric_rows(run: RunSummary) -> list[dict[str, Any]]:
    """Rows of (section, metric, value, 95% CI) for a table."""
    data = json.loads((run.path / "results.json").read_text(encoding="utf-8"))
    rows = []
    for name, section in data.get("sections", {}).items():
        for metric, value in section.get("metrics", {}).items():
            ci = section.get("ci", {}).get(metric) or {}
            low, high = ci.get("low"), ci.get("high")
            rows.append({"section": name, "metric": metric, "value": value,
                         "95% CI": f"[{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""})
    return rows


def _show_run(run: RunSummary) -> None:
    st.subheader(plain(run.label))
    st.caption(str(run.path))
    st.dataframe(metric_rows(run), hide_index=True, width="stretch")
    plots = sorted((run.path / "plots").glob("*.png")) if (run.path / "plots").is_dir() else []
    for plot in plots:
        st.image(str(plot), caption=plot.stem)
    report = run.path / "report.md"
    if report.is_file():
        with st.expander("report.md"):  # as text: it quotes model outputs, which are never live Markdown
            st.code("\n".join(line for line in report.read_text(encoding="utf-8").splitlines()
                              if not line.startswith("![")), language=None, wrap_lines=True)  # plots are above
        st.download_button("Download report.md", report.read_bytes(), file_name=f"{run.suite}-report.md")


def _compare(runs: list[RunSummary]) -> None:
    from mmagent.evals.compare import compare_runs

    st.subheader("Compare two runs")
    labels = {str(r.path): r.label for r in runs}
    suites = {str(r.path): r.suite for r in runs}
    left, right = st.columns(2)
    a = left.selectbox("Run A", list(labels), format_func=labels.get, key="cmp_a")
    others = [p for p in labels if p != a and suites[p] == suites[a]]  # only runs of the same suite compare
    if not others:
        right.caption(f"No other run of suite '{suites[a]}' to compare with.")
        return
    b = right.selectbox("Run B", others, format_func=labels.get, key="cmp_b")
    if not st.button("Compare"):
        return
    try:
        comparison = compare_runs(Path(a), Path(b))
    except MMAgentError as exc:
        st.error(plain(str(exc)))
        return
    st.caption(f"suite {comparison.suite}: {comparison.shared} shared example(s); B − A with paired bootstrap.")
    rows = []
    for d in comparison.deltas:
        row = d.to_dict()
        verdict = {None: "no significant difference", True: "B better", False: "B worse"}[row["better"]]
        rows.append({"metric": f"{row['section']}:{row['metric']}", "A": row["a"], "B": row["b"], "B − A": row["delta"],
                     "95% CI": f"[{row['low']:+.4f}, {row['high']:+.4f}]", "p": row["p_value"], "verdict": verdict})
    st.dataframe(rows, hide_index=True, width="stretch")
    if comparison.manifest_diffs:
        st.dataframe([{"field": f.field, "A": str(f.a), "B": str(f.b)} for f in comparison.manifest_diffs],
                     hide_index=True, width="stretch")
    else:
        st.caption("The manifests agree on every field.")


def render() -> None:
    st.title("Evals")
    root = runs_root()
    st.caption(plain(f"Runs under {root} (set MMAGENT_UI_EVAL_RUNS before `mmagent ui` to read another folder)."))
    runs = find_runs(root)
    if not runs:
        st.info(plain(f"No eval runs under '{root}'. Run `mmagent eval run --suite NAME` there and they appear here."))
        return
    labels = {str(r.path): r for r in runs}
    chosen = st.selectbox("Run", list(labels), format_func=lambda p: labels[p].label)
    _show_run(labels[chosen])
    if len(runs) > 1:
        _compare(runs)
