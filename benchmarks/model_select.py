"""Choose the embedded default language model by measurement, in one run on this machine.

For every embedded model: speed at each precision that makes sense on this CPU (load, time to first
token for a 500-token prompt, decode tok/s, peak RSS — each in a fresh process), then the eval suites at
the model's fastest precision, each score with its bootstrap 95% CI. The default is the best-scoring
model whose first token is <= 3 s and decode >= 5 tok/s (issue 14's floor). Eval answers are cached per
model and suite under --out, so an interrupted run resumes where it stopped.

    python benchmarks/model_select.py                       # everything: Markdown to stdout, JSON to --out
    python benchmarks/model_select.py --speed-only          # the speed table alone (minutes)
    python benchmarks/model_select.py --models smollm2-135m qwen2.5-coder-0.5b --suites squad_mini
    python benchmarks/model_select.py --speed-from benchmarks/out/model_select/speed.json  # speed measured earlier
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIRST_TOKEN_LIMIT_S = 3.0
DECODE_FLOOR_TOK_S = 5.0
PROMPT_TOKENS = 500
NEW_TOKENS = 64
DEFAULT_MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
SHIPPED_SUITES = ("squad_mini", "support_tasks", "summarize_mini", "pipeline_qa", "docvqa_text", "vqa_shapes")
# The metric a suite is ranked by (higher is better), first match wins.
PRIMARY = ("f1", "task_success", "success", "anls", "accuracy", "rougeL", "rouge_l")
# (quantization, dtype) pairs that make sense on a CPU; bfloat16 only where the CPU has bf16 instructions.
PRECISIONS = (("none", "float32"), ("none", "bfloat16"), ("8bit", "float32"), ("4bit", "float32"))


def _prompt(tokenizer, tokens: int) -> list[dict]:
    """A user message of exactly `tokens` tokens of real prose, asking the model to continue it."""
    corpus = (HERE.parent / "evals" / "fixtures" / "corpus.jsonl").read_text(encoding="utf-8")
    text = " ".join(json.loads(line)["text"] for line in corpus.splitlines() if line.strip())
    ids = tokenizer(text, add_special_tokens=False).input_ids
    while len(ids) < tokens:
        ids = ids + ids
    body = tokenizer.decode(ids[:tokens])
    return [{"role": "user", "content": f"{body}\n\nRepeat the text above word for word."}]


def measure_speed(model: str, quantization: str, dtype: str) -> dict:
    """Load, first token and decode speed of one model at one precision (call in a fresh process)."""
    started = time.perf_counter()
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    config = load_config(overrides={"model.id": f"embedded:{model}", "model.quantization": quantization,
                                    "model.dtype": dtype, "model.ocr": "off"})
    imported = time.perf_counter()
    backend = HFVisionBackend(config)
    loaded = time.perf_counter()
    messages = _prompt(backend.tokenizer, PROMPT_TOKENS)
    backend.complete(messages, max_new_tokens=2)  # warm-up: kernels, allocator
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        first, pieces = None, []
        for piece in backend.generate(messages, max_new_tokens=NEW_TOKENS, repetition_penalty=1.0):
            first = first or time.perf_counter() - t0
            pieces.append(piece)
        total = time.perf_counter() - t0
        tokens = len(backend.tokenizer("".join(pieces), add_special_tokens=False).input_ids)
        runs.append({"first_token_s": first or total, "tokens": tokens,
                     "decode_tok_s": (tokens - 1) / max(total - (first or total), 1e-9)})
    return {
        "model": model, "quantization": quantization, "dtype": dtype, "precision": backend.info().precision,
        "load_s": loaded - imported, "import_s": imported - started,
        "first_token_s": min(r["first_token_s"] for r in runs),
        "decode_tok_s": max(r["decode_tok_s"] for r in runs),
        "tokens": max(r["tokens"] for r in runs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_has_bf16() -> bool:
    from mmagent.model.quantization import cpu_has_bf16

    return cpu_has_bf16()


def speed_table(models: list[str]) -> list[dict]:
    rows = []
    for model in models:
        for quantization, dtype in PRECISIONS:
            if dtype == "bfloat16" and not _cpu_has_bf16():
                continue
            done = subprocess.run([sys.executable, __file__, "--one", model, quantization, dtype],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                rows.append({"model": model, "quantization": quantization, "dtype": dtype,
                             "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"speed {model} {quantization}/{dtype}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def passes_floor(row: dict) -> bool:
    return "error" not in row and row["first_token_s"] <= FIRST_TOKEN_LIMIT_S and row["decode_tok_s"] >= DECODE_FLOOR_TOK_S


def fastest(rows: list[dict], model: str) -> dict | None:
    """The model's precision with the best decode among those that pass the floor (or at all)."""
    mine = [r for r in rows if r["model"] == model and "error" not in r]
    ok = [r for r in mine if passes_floor(r)] or mine
    return max(ok, key=lambda r: (r["decode_tok_s"], -r["first_token_s"]), default=None)


def run_suites(model: str, precision: dict, suites: list[str], out: Path, limit: int | None) -> dict:
    """`mmagent eval` for each suite on one model; returns suite -> {metrics, primary, ci}."""
    results = {}
    for suite in suites:
        folder = out / model / suite
        argv = ["mmagent", "eval", "run", "--suite", suite, "--model", f"embedded:{model}", "--json",
                "--no-report", "--out", str(folder), "--set", f"model.quantization={precision['quantization']}",
                "--set", f"model.dtype={precision['dtype']}"]
        if limit:
            argv += ["--limit", str(limit)]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        minutes = (time.perf_counter() - started) / 60
        if done.returncode != 0:
            results[suite] = {"error": done.stderr.strip()[-400:], "minutes": minutes}
        else:
            results[suite] = {**_summarise(folder, json.loads(done.stdout)[0]), "minutes": minutes}
        print(f"eval {model} {suite}: {results[suite]}", file=sys.stderr, flush=True)
    return results


def _summarise(folder: Path, summary: dict) -> dict:
    """The suite's metrics, its primary metric and that metric's CI (from results.json)."""
    metrics: dict[str, float] = {}
    for section, values in summary["metrics"].items():
        metrics.update({(k if section in ("all", summary["suite"]) else f"{section}:{k}"): v
                        for k, v in values.items()})
    flat = {k.split(":")[-1]: (k, v) for k, v in metrics.items()}
    primary = next((flat[name] for name in PRIMARY if name in flat), None)
    ci = None
    results = folder / "results.json"
    if primary and results.is_file():
        data = json.loads(results.read_text())
        ci = _find_ci(data, primary[0].split(":")[-1])
    return {"metrics": metrics, "primary": primary[0] if primary else None,
            "value": primary[1] if primary else None, "ci": ci}


def _find_ci(data, metric: str):
    """The first {'low','high'} interval recorded for `metric` anywhere in results.json."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == metric and isinstance(value, dict) and "low" in value:
                return [value["low"], value["high"]]
            found = _find_ci(value, metric)
            if found:
                return found
    if isinstance(data, list):
        for value in data:
            found = _find_ci(value, metric)
            if found:
                return found
    return None


def _unit(value: float | None) -> float | None:
    """Scores in 0..1 whatever the metric's scale (SQuAD F1 is 0..100)."""
    if value is None:
        return None
    return value / 100 if value > 1.0 else value


def choose(speed: list[dict], quality: dict[str, dict]) -> tuple[str | None, dict[str, float]]:
    """Mean primary score (0..1) per model over the suites it completed; the best one that passes the floor."""
    means = {}
    for model, suites in quality.items():
        values = [_unit(s.get("value")) for s in suites.values() if s.get("value") is not None]
        if values:
            means[model] = sum(values) / len(values)
    eligible = [m for m in means if any(passes_floor(r) for r in speed if r["model"] == m)]
    return (max(eligible, key=means.get) if eligible else None), means


def markdown(speed: list[dict], quality: dict[str, dict], chosen: str | None, means: dict[str, float]) -> str:
    lines = [f"Floor: first token <= {FIRST_TOKEN_LIMIT_S:.0f} s for a {PROMPT_TOKENS}-token prompt and decode "
             f">= {DECODE_FLOOR_TOK_S:.0f} tok/s ({NEW_TOKENS} new tokens, greedy; best of 2 runs after a warm-up).", "",
             "| model | quantization | dtype | load (s) | first token (s) | decode (tok/s) | peak RSS (MB) | floor |",
             "|---|---|---|---|---|---|---|---|"]
    for r in speed:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['quantization']} | {r['dtype']} | failed: {r['error'][:80]} | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['quantization']} | {r['dtype']} | {r['load_s']:.1f} | "
                     f"{r['first_token_s']:.2f} | {r['decode_tok_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{'pass' if passes_floor(r) else 'miss'} |")
    if quality:
        suites = sorted({s for q in quality.values() for s in q})
        lines += ["", "| model | " + " | ".join(suites) + " | mean (0..1) |", "|---" * (len(suites) + 2) + "|"]
        for model, results in quality.items():
            cells = []
            for suite in suites:
                r = results.get(suite, {})
                if r.get("value") is None:
                    cells.append("failed" if "error" in r else "—")
                    continue
                ci = f" ({r['ci'][0]:.2f}..{r['ci'][1]:.2f})" if r.get("ci") else ""
                cells.append(f"{r['primary']} {r['value']:.2f}{ci}")
            mean = f"{means[model]:.3f}" if model in means else "—"
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {mean} |")
        lines += ["", f"Chosen default: **{chosen or 'none passes the floor'}**."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "QUANTIZATION", "DTYPE"), help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--suites", nargs="*", default=None, help="default: the shipped six plus the grown suites")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--speed-from", type=Path, default=None,
                        help="reuse the speed table of an earlier run's model_select.json (measured on a quiet "
                             "machine) instead of measuring again")
    parser.add_argument("--limit", type=int, default=None, help="first N examples per suite (smoke runs)")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "model_select")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_speed(*args.one)))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.speed_from:
        speed = [r for r in json.loads(args.speed_from.read_text())["speed"] if r["model"] in args.models]
    else:
        speed = speed_table(args.models)
    quality: dict[str, dict] = {}
    if not args.speed_only:
        suites = args.suites or _default_suites()
        for model in args.models:
            precision = fastest(speed, model)
            if precision:
                quality[model] = {"precision": precision, **run_suites(model, precision, suites, args.out, args.limit)}
        quality = {m: {k: v for k, v in q.items() if k != "precision"} for m, q in quality.items()}
    chosen, means = choose(speed, quality)
    (args.out / "model_select.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "speed": speed, "quality": quality, "means": means,
         "chosen": chosen}, indent=2))
    print(markdown(speed, quality, chosen, means))
    return 0


def _default_suites() -> list[str]:
    from mmagent.evals.suite import shipped_suites

    shipped = set(shipped_suites())
    grown = sorted(shipped - set(SHIPPED_SUITES) - {"speech_mini", "retrieval_mini", "classify_mini"})
    return [s for s in SHIPPED_SUITES if s in shipped] + grown


if __name__ == "__main__":
    sys.exit(main())
