"""A LoRA recipe's held-out accuracy as mean ± spread over seeds, not one run's number.

One run's accuracy moves by several points with the seed (training sample, LoRA init, dropout, data
order and, through `seed`, the held-out sample too) and, at the same seed, with the machine (see the
adapter manifest's `environment`). So we report the mean and the spread over seeds, per question type.

    python benchmarks/finetune_seeds.py --seeds 0 1 2                  # trains what is missing, then summarises
    python benchmarks/finetune_seeds.py --seeds 0 1 2 --threads 1      # pin threads (faster on a busy machine)
    python benchmarks/finetune_seeds.py --runs runs/seeds/vlm-easy-vqa-seed*   # summarise finished runs only

Runs go to `runs/seeds/<recipe>-seed<N>` and are trained one after another with `mmagent finetune run`
(a wall-clock budget would make the step count depend on the machine's load, so it is switched off).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

CATEGORIES = ("all", "colour", "shape", "yes/no")


def train_missing(recipe: str, seeds: list[int], root: Path, threads: int, sets: list[str]) -> list[Path]:
    folders = []
    for seed in seeds:
        folder = root / f"{recipe}-seed{seed}"
        folders.append(folder)
        if (folder / "eval_results.json").is_file():
            continue
        argv = ["mmagent", "finetune", "run", recipe, "--set", f"seed={seed}", "--set", f"output_dir={folder}",
                "--set", "train.max_minutes=0", *(["--set", f"train.threads={threads}"] if threads else []),
                *[arg for s in sets for arg in ("--set", s)]]
        print("running:", " ".join(argv), file=sys.stderr, flush=True)
        subprocess.run(argv, check=True, env=os.environ | {"OMP_NUM_THREADS": str(threads)} if threads else None)
    return folders


def run_row(folder: Path) -> dict:
    from mmagent.finetune.environment import weights_hash

    scores = json.loads((folder / "eval_results.json").read_text())
    manifest = json.loads((folder / "mmagent_adapter.json").read_text())
    env = manifest.get("environment", {})
    lead = scores["adapter_vs_blind_baseline"]["all"]
    return {"run": folder.name, "seed": manifest["recipe"]["seed"], "steps": manifest["metrics"]["steps"],
            "minutes": manifest["metrics"]["minutes"], "stopped": manifest.get("stopped"),
            "threads": env.get("threads", "–"), "weights_hash": manifest.get("weights_hash") or weights_hash(folder),
            "adapter": {c: scores["adapter"].get(c) for c in CATEGORIES},
            "blind": {c: scores["blind_baseline"].get(c) for c in CATEGORIES},
            "lead": (lead["points"], lead["low"], lead["high"])}


def spread(values: list[float]) -> str:
    """mean ± sample standard deviation [min–max]."""
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):.1f} ± {sd:.1f} [{min(values):.1f}–{max(values):.1f}]"


def markdown(rows: list[dict]) -> str:
    lines = ["| run | seed | steps | min | threads | weights | adapter all | colour | shape | yes/no | blind all | "
             "lead over blind (95% CI) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, lead = r["adapter"], r["lead"]
        lines.append(f"| {r['run']} | {r['seed']} | {r['steps']}{' (' + r['stopped'] + ')' if r['stopped'] else ''} | "
                     f"{r['minutes']} | {r['threads']} | {r['weights_hash']} | {a['all']} | {a['colour']} | "
                     f"{a['shape']} | {a['yes/no']} | {r['blind']['all']} | {lead[0]:+.1f} ({lead[1]:+.1f}..{lead[2]:+.1f}) |")
    lines += ["", f"Over {len(rows)} seeds, mean ± sd [min–max]:", "",
              "| | all | colour | shape | yes/no |", "|---|---|---|---|---|"]
    for arm in ("adapter", "blind"):
        lines.append(f"| {arm} | " + " | ".join(spread([r[arm][c] for r in rows]) for c in CATEGORIES) + " |")
    lines.append("| lead over blind (points) | " + spread([r["lead"][0] for r in rows]) + " | | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="vlm-easy-vqa")
    parser.add_argument("--seeds", type=int, nargs="*", default=[])
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="finished run folders to summarise")
    parser.add_argument("--root", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra recipe override")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    folders = list(args.runs) + (train_missing(args.recipe, args.seeds, args.root, args.threads, args.sets)
                                 if args.seeds else [])
    rows = [run_row(f) for f in folders if (f / "eval_results.json").is_file()]
    if not rows:
        print("no finished runs (each needs eval_results.json and mmagent_adapter.json)", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
