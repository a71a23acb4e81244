"""Run every benchmark and write benchmarks/RESULTS.md with the machine, date, commit and load.

    python benchmarks/run_all.py                 # all benchmarks (about 15 minutes on 2 cores)
    python benchmarks/run_all.py --only asr model

Timings are only comparable on a quiet machine: the load average before and after each benchmark is
recorded next to its table so a noisy number can be recognised as such.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "model": ("Model core: load, first token, decode speed, memory per precision; adapter switching",
              ["model_bench.py"]),
    "model_select": ("Embedded language models: speed per precision (the speed half of choosing `default`)",
                     ["model_select.py", "--speed-only"]),
    "asr": ("Speech recognition (embedded Whisper tiny.en)", ["asr_bench.py"]),
    "memory": ("Vector memory: ingest and query (10,000 chunks, packaged MiniLM, Chroma on disk)",
               ["memory_bench.py"]),
    "tool_calls": ("Tool calls by the embedded model, free vs grammar-constrained", ["tool_calls.py"]),
    "fusion": ("Text+image fusion classifier on easy-vqa", ["fusion_bench.py"]),
}


def machine() -> str:
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
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def run_one(name: str) -> str:
    title, argv = BENCHMARKS[name]
    script = HERE / argv[0]
    if not script.is_file():
        return f"## {title}\n\nNot run: {script.name} is not in this checkout.\n"
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), *argv[1:]], capture_output=True, text=True)
    minutes = (time.perf_counter() - started) / 60
    body = done.stdout.strip()
    if done.returncode != 0:
        body = f"FAILED (exit {done.returncode}):\n\n```\n{done.stderr[-2000:]}\n```"
    elif "|---" not in body:
        body = f"```\n{body}\n```"
    return (f"## {title}\n\n`python benchmarks/{' '.join(argv)}` — {minutes:.1f} min, "
            f"load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after.\n\n{body}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    header = (f"# Benchmark results\n\nMachine: {machine()}\n\nDate: {time.strftime('%Y-%m-%d %H:%M %Z')}, "
              f"commit {commit()}. Regenerate with `python benchmarks/run_all.py`.\n")
    sections = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        sections.append(run_one(name))
        args.out.write_text("\n".join([header, *sections]))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
