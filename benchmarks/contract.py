"""What every `benchmarks/<name>_bench.py` shares: the machine line, load averages, interleaved medians,
and the JSON file `run_all.py` collects (the contract of issue 18).

A script run as `python benchmarks/x_bench.py` has `benchmarks/` on sys.path, so `import contract` works.
On a shared 2-core machine no absolute time holds from run to run; a ratio against a baseline measured
in the same process, interleaved with it, does — hence `interleaved()` and `Report.ratio()`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def arguments(doc: str, quick: str) -> argparse.ArgumentParser:
    """A script's parser with the contract's two flags; `quick` says what --quick shrinks to."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", type=Path, help="write the contract's JSON here")
    return parser


def machine() -> str:
    """CPU model, cores, RAM, OS and Python: enough to tell two machines apart."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def load() -> list[float]:
    """The 1/5/15-minute load averages, rounded: written next to every timing."""
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def interleaved(conditions: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Run each condition once per round, rounds `repeats` times, alternating the order every round.

    Load on a shared machine drifts over minutes; alternating makes every condition see the same drift,
    so their medians can be divided. Returns each condition's list of results in round order."""
    results: dict[str, list[Any]] = {name: [] for name in conditions}
    names = list(conditions)
    for round_ in range(repeats):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            results[name].append(conditions[name]())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Report:
    """One benchmark's figures in the contract's JSON shape; `markdown` is what the script prints."""

    benchmark: str
    quick: bool = False
    rows: list[dict] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    load_before: list[float] = field(default_factory=load)
    date: str = field(default_factory=now)

    def target(self, name: str, value: float | None, target: str, met: bool | None, *,
               baseline: str = "", ratio: float | None = None, unit: str = "", reason: str = "") -> None:
        """Record one target of issue 18. `met` None means "report only" (no pass/fail threshold)."""
        self.targets[name] = {"value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
                              "target": target, "met": met, **({"reason": reason} if reason else {})}

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "machine": machine(), "date": self.date, "commit": commit(),
                "quick": self.quick, "load_before": self.load_before, "load_after": load(), "rows": self.rows,
                "ratios": self.ratios, "targets": self.targets, "notes": self.notes}

    def write(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A markdown table of `rows` with (key, header) columns; floats get 3 significant digits."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot(name: str, draw: Callable[[Any], None]) -> Path | None:
    """Save a PNG drawn by `draw(ax)` to benchmarks/out/<name>.png; None when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    draw(ax)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
