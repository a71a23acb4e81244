"""The same recipe under `accelerate launch`: shipped configs load, and a real 2-process CPU DDP run (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def test_every_shipped_accelerate_config_loads_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    from mmagent.finetune.recipe import accelerate_configs

    configs = accelerate_configs()
    assert set(configs) == {"ddp_cpu", "ddp_gpu", "fsdp", "deepspeed_zero2"}
    kinds = {name: str(load_config_from_file(str(path)).distributed_type) for name, path in configs.items()}
    assert kinds["fsdp"].endswith("FSDP") and kinds["deepspeed_zero2"].endswith("DEEPSPEED")
    assert kinds["ddp_cpu"].endswith("MULTI_GPU")  # torchrun launcher; the processes train on the CPU
    fsdp = load_config_from_file(str(configs["fsdp"])).fsdp_config
    assert fsdp["fsdp_use_orig_params"] is True  # LoRA needs it under FSDP


def test_finetune_cp_copies_an_accelerate_config(tmp_path):
    copied = subprocess.run(["mmagent", "finetune", "cp", "ddp_cpu", str(tmp_path)], capture_output=True, text=True)
    assert copied.returncode == 0 and (tmp_path / "ddp_cpu.yaml").read_text().startswith("# DDP on the CPU")


@pytest.fixture()
def colour_jsonl(tmp_path) -> Path:
    (tmp_path / "img").mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green"] * 4):
        Image.new("RGB", (32, 32), colour).save(tmp_path / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "question": "what color is the shape?", "answer": colour})
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path / "train.jsonl"


def test_two_process_cpu_ddp_run_trains_and_only_rank_0_writes(tiny_llava_dir, colour_jsonl, tmp_path):
    from safetensors.torch import load_file

    from mmagent.finetune.recipe import accelerate_configs

    out = tmp_path / "run"
    sets = [f"model.id={tiny_llava_dir}", "model.ocr=off", f"data.train={colour_jsonl}", "data.eval=null",
            "lora.r=4", "lora.region_init=zero",
            "train.batch_size=2", "train.max_steps=4", "train.eval_steps=2", "train.save_steps=2",
            "train.lr=0.01", "train.warmup_ratio=0", f"output_dir={out}"]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_configs()["ddp_cpu"]),
               "--num_processes", "2", "--main_process_port", "29517", "-m", "mmagent.finetune.launch", "vlm-easy-vqa",
               *[arg for s in sets for arg in ("--set", s)], "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)  # exactly one JSON object: rank 1 printed nothing
    assert summary["metrics"]["processes"] == 2 and summary["metrics"]["backend"] == "gloo"
    assert summary["metrics"]["steps"] == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [2, 4]  # one row per logging step: only rank 0 wrote
    # 4 steps x 2 examples x 2 processes = 16 examples seen: each rank took its own half of the data.
    assert train_rows[-1]["epoch"] == pytest.approx(16 / 12, abs=1e-3)
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(float(t.abs().max()) > 0 for t in lora_b)  # lora_B starts at zero
    manifest = json.loads((out / "mmagent_adapter.json").read_text())
    assert manifest["metrics"]["processes"] == 2 and not (out / "training_args.bin").exists()
