"""Fine-tuning step time and peak memory: our path (`mmagent finetune`, mmagent/finetune/lora.py) against
plain peft + transformers `Trainer` on the same model, examples, batch, LoRA config and steps.

LoRA (float32) and QLoRA (bitsandbytes nf4 on the CPU) each run once per arm per repeat, the arms
alternating which goes first. Every run is its own process, so its peak RSS is its own. A step's time is
the wall time between two `on_step_end` callbacks (data loading, collation, forward, backward, optimizer
and any callback work); the first two steps are warm-up and left out; each run reports its median step.
Ratios are paired per repeat (plain ÷ ours for step time, ours ÷ plain for memory), then the median.

    python benchmarks/finetune_bench.py --quick            # 135M model, LoRA only, 6 steps of batch 2, 1 repeat
    python benchmarks/finetune_bench.py --json benchmarks/out/finetune.json    # 20 steps of batch 16, 2 repeats

Both arms train the embedded SmolLM2-135M VLM (the model the vlm-easy-vqa recipe pins) on the same
easy-vqa training questions, rendered with the model's own chat template. The plain arm is what a user
would write from the peft and transformers docs: load, (prepare for k-bit,) wrap in `LoraConfig` with
the recipe's r/alpha/dropout/target regex and the projector fully trained, pad with the processor, loss
on every non-pad token. Ours is the vlm-easy-vqa recipe with held-out scoring off.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import contract

MODEL = "embedded:smollm2-135m"
WARMUP_STEPS = 2
TARGET = 0.95  # plain step time ÷ ours: at or above it, ours is "no slower" within this machine's noise


def rss_mb() -> float:
    """Resident memory now (MB)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_clock():
    """A TrainerCallback that records each step's wall time and the RSS when training starts."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self.last = 0.0
            self.rss_at_start = 0.0

        def on_train_begin(self, args, state, control, **kw):
            self.rss_at_start = rss_mb()
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            self.steps.append(now - self.last)
            self.last = now

    return StepClock()


def recipe_sets(mode: str, steps: int, batch: int, out: Path) -> list[str]:
    return [f"model.id={MODEL}", f"model.quantization={'4bit' if mode == 'qlora' else 'none'}", "data.eval=null",
            f"train.max_steps={steps}", f"train.batch_size={batch}", "train.max_minutes=0", f"output_dir={out}"]


def run_ours(mode: str, steps: int, batch: int, out: Path) -> dict[str, Any]:
    from mmagent.finetune.lora import train
    from mmagent.finetune.recipe import load_recipe

    clock = step_clock()
    manifest = train(load_recipe("vlm-easy-vqa", recipe_sets(mode, steps, batch, out)), progress=False,
                     callbacks=[clock])
    return {"clock": clock, "loss": manifest["metrics"]["train_loss"]}


def run_plain(mode: str, steps: int, batch: int, out: Path) -> dict[str, Any]:
    """The baseline: model, LoRA and Trainer exactly as the peft/transformers docs show, nothing of ours
    but the model's location and the list of examples (the same ones our recipe draws)."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig, Trainer, \
        TrainingArguments, set_seed

    import mmagent.model.default_vlm.vision  # noqa: F401  registers the embedded tower's classes with transformers
    from mmagent.config import load_config
    from mmagent.finetune.data import balance_categories, load_examples
    from mmagent.finetune.recipe import load_recipe
    from mmagent.model.backend import resolve_model_path

    recipe = load_recipe("vlm-easy-vqa", recipe_sets(mode, steps, batch, out))
    set_seed(recipe.seed)
    path = resolve_model_path(load_config(overrides={"model.id": MODEL}).model, load_config().paths.cache)
    processor = AutoProcessor.from_pretrained(path)
    kwargs: dict[str, Any] = {}
    if mode == "qlora":
        skip = [r".*vision_tower", r".*multi_modal_projector", "lm_head"]
        kwargs = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                            bnb_4bit_compute_dtype=torch.float32,
                                                            llm_int8_skip_modules=skip), "device_map": "cpu"}
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32, **kwargs)
    if mode == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = recipe.lora
    model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                             target_modules=lora.target_modules,
                                             modules_to_save=["multi_modal_projector"]))
    examples = balance_categories(load_examples(recipe.data.train, None, recipe.seed), steps * batch)
    rows = []
    for example in examples:
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": example.question}]},
                        {"role": "assistant", "content": example.answer}]
        rows.append({"text": processor.apply_chat_template(conversation, tokenize=False),
                     "image": Image.open(example.images[0]).convert("RGB")})

    def collate(batch_rows: list[dict]) -> dict:
        enc = processor(text=[r["text"] for r in batch_rows], images=[r["image"] for r in batch_rows],
                        return_tensors="pt", padding=True)
        enc["labels"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        return dict(enc)

    t = recipe.train
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps,
                             learning_rate=t.lr, lr_scheduler_type=t.scheduler, warmup_steps=t.warmup_ratio,
                             use_cpu=True, report_to="none", remove_unused_columns=False, save_strategy="no",
                             dataloader_num_workers=0, seed=recipe.seed, logging_steps=10)
    clock = step_clock()
    result = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[clock]).train()
    return {"clock": clock, "loss": result.training_loss}


def child(arm: str, mode: str, steps: int, batch: int) -> dict[str, Any]:
    """One training run in this process; prints its figures as one JSON line."""
    import logging

    import torch

    logging.disable(logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = (run_ours if arm == "ours" else run_plain)(mode, steps, batch, Path(tmp) / "out")
    clock = run["clock"]
    timed = clock.steps[WARMUP_STEPS:] or clock.steps
    return {"arm": arm, "mode": mode, "steps": len(clock.steps), "batch": batch,
            "median_step_s": round(statistics.median(timed), 3), "step_s": [round(s, 3) for s in clock.steps],
            "train_s": round(sum(clock.steps), 2), "rss_at_train_start_mb": round(clock.rss_at_start),
            "peak_rss_mb": round(peak_rss_mb()), "process_s": round(time.perf_counter() - started, 1),
            "train_loss": round(run["loss"], 4), "threads": torch.get_num_threads()}


def spawn(arm: str, mode: str, steps: int, batch: int, threads: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", arm, "--mode", mode, "--steps", str(steps), "--batch", str(batch)]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)} if threads else None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{arm} {mode} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["load_after"] = contract.load()[0]
    return row


def paired(rows: list[dict], mode: str, key: str) -> list[float]:
    """Per repeat, ours ÷ plain for `key` (runs of one repeat were interleaved, so they saw the same load)."""
    by = {(r["arm"], r["repeat"]): r[key] for r in rows if r["mode"] == mode}
    return [by[("ours", k)] / by[("plain", k)] for arm, k in by if arm == "ours" and ("plain", k) in by]


def markdown(report: contract.Report, steps: int, batch: int, repeats: int) -> str:
    j = report.to_json()
    head = (f"{j['machine']}; {j['date']}, commit {j['commit']}, load average {j['load_before']} before / "
            f"{j['load_after']} after. {steps} steps of batch {batch} on {MODEL} per run, {repeats} repeat(s), "
            "ours and plain alternating; every run in its own process.")
    runs = contract.table(report.rows, [("mode", "mode"), ("arm", "arm"), ("repeat", "repeat"),
                                        ("median_step_s", "median step (s)"), ("train_loss", "train loss"),
                                        ("rss_at_train_start_mb", "RSS at train start (MB)"),
                                        ("peak_rss_mb", "peak RSS (MB)"), ("threads", "threads"),
                                        ("load_after", "load after")])
    summary = contract.table([{"figure": name, **t} for name, t in report.targets.items()],
                             [("figure", "figure"), ("value", "ours"), ("unit", "unit"), ("ratio", "ratio"),
                              ("baseline", "baseline"), ("target", "target"), ("met", "met")])
    reading = ("Reading: step-time ratio = plain step ÷ our step (1.0: as fast; ≥ 0.95 counts as no slower, the "
               "spread between repeated pairs on this shared machine being about that wide); memory ratio = our "
               "peak RSS ÷ plain's, each the whole process (model load, data, training).")
    return "\n\n".join([head, runs, summary, reading])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 steps of batch 2, 1 repeat")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads in both arms (0 = torch's default; 1 is steadier on a busy machine)")
    parser.add_argument("--modes", nargs="+", choices=["lora", "qlora"],
                        help="default: lora and qlora; lora alone with --quick (QLoRA's arms would double its time)")
    parser.add_argument("--child", choices=["ours", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["lora", "qlora"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or (6 if args.quick else 20)
    batch = args.batch or (2 if args.quick else 16)
    repeats = args.repeats or (1 if args.quick else 2)
    modes = args.modes or (["lora"] if args.quick else ["lora", "qlora"])
    if args.child:
        print(json.dumps(child(args.child, args.mode, steps, batch)))
        return 0
    report = contract.Report("finetune", quick=args.quick)
    for mode in modes:
        arms = {arm: (lambda arm=arm: spawn(arm, mode, steps, batch, args.threads)) for arm in ("ours", "plain")}
        runs = contract.interleaved(arms, repeats)
        for arm, results in runs.items():
            report.rows += [r | {"repeat": k + 1} for k, r in enumerate(results)]
        step = contract.median(paired(report.rows, mode, "median_step_s"))
        memory = contract.median(paired(report.rows, mode, "peak_rss_mb"))
        ours = contract.median([r["median_step_s"] for r in report.rows if r["mode"] == mode and r["arm"] == "ours"])
        label = "LoRA" if mode == "lora" else "QLoRA (nf4, CPU)"
        report.ratios[f"{mode}_step_plain_over_ours"] = round(1 / step, 3)
        report.ratios[f"{mode}_peak_rss_ours_over_plain"] = round(memory, 3)
        report.target(f"fine-tune {label} step time", ours, f"≥ {TARGET}× plain's speed", 1 / step >= TARGET,
                      baseline="plain peft + Trainer, same data/model/batch/LoRA", ratio=round(1 / step, 3), unit="s/step")
        ours_mb = contract.median([r["peak_rss_mb"] for r in report.rows if r["mode"] == mode and r["arm"] == "ours"])
        report.target(f"fine-tune {label} peak memory", ours_mb, "report", None,
                      baseline="plain peft + Trainer", ratio=round(memory, 3), unit="MB peak RSS")
    report.write(args.json)
    print(markdown(report, steps, batch, repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
