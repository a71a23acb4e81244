"""benchmarks/run_all.py: the generated part of RESULTS.md is replaced and the curated part kept; every
issue-18 target gets a row (a script's own figures, or "not run" with the reason); and each benchmark
script in the checkout takes the contract's --quick and --json flags."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import run_all  # noqa: E402


def test_splice_rewrites_only_the_generated_part(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n\n## Curated\n\nhand-written table\n")
    run_all.splice(results, "first run\n")
    text = results.read_text()
    assert text.index(run_all.BEGIN) < text.index("first run") < text.index(run_all.END) < text.index("## Curated")
    run_all.splice(results, "second run\n")
    text = results.read_text()
    assert "first run" not in text and text.count("second run") == 1 and text.count(run_all.BEGIN) == 1
    assert text.startswith("# Benchmark results\n") and text.endswith("## Curated\n\nhand-written table\n")


def _script(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}_bench.py").write_text(textwrap.dedent(body))


def test_run_one_collects_json_and_says_why_a_script_did_not_run(tmp_path):
    _script(tmp_path, "good", """
        import json, sys
        path = sys.argv[sys.argv.index("--json") + 1]
        quick = "--quick" in sys.argv
        json.dump({"benchmark": "good", "targets": {"speed": {"value": 2.0, "target": ">= 1x", "met": quick,
                                                              "ratio": 2.0, "baseline": "plain"}}}, open(path, "w"))
        print("| a |\\n|---|\\n| 1 |")
    """)
    _script(tmp_path, "broken", "raise SystemExit('no model here')")
    benches = tuple(run_all.Bench(name, name.title(), (target,), folder=tmp_path)
                    for name, target in (("good", "speed"), ("broken", "memory"), ("absent", "ui")))
    out = tmp_path / "out"
    out.mkdir()
    sections = [run_all.run_one(b, quick=True, out=out) for b in benches]
    assert [s["status"] for s in sections] == ["ran", "not run", "not run"]
    assert sections[0]["result"]["targets"]["speed"]["met"] is True and "| 1 |" in sections[0]["markdown"]
    assert "no model here" in sections[1]["reason"] and "not in this checkout" in sections[2]["reason"]
    assert all(len(s["load_before"]) == 3 for s in sections)
    rows = run_all.summary_rows(benches, sections)
    assert [(r["name"], r.get("status", "")[:7]) for r in rows] == [("speed", ""), ("memory", "not run"), ("ui", "not run")]
    page = run_all.markdown({"quick": True, "date": "d", "commit": "c", "wall_minutes": 0.1, "machine": "m",
                             "load_before": [1, 1, 1], "load_after": [1, 1, 1], "versions": {"torch": "x"},
                             "sections": sections, "summary": rows})
    assert "| speed | 2 | plain | 2.00× | >= 1x | **met** |" in page
    assert "not run: exit 1" in page and "| 1 |" in page


@pytest.mark.parametrize("bench", [b for b in run_all.BENCHES if b.script.is_file()], ids=lambda b: b.name)
def test_every_benchmark_script_takes_the_contract_flags(bench):
    """`--help` runs no benchmark (heavy imports are lazy), but proves the flags run_all passes exist."""
    done = subprocess.run([sys.executable, str(bench.script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--json" in done.stdout
