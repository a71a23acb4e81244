"""`mmagent finetune list|cp|run` end to end on the tiny random LLaVA, through the real console script."""

import importlib.util
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours-cli")
    (root / "img").mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green"] * 3):
        Image.new("RGB", (32, 32), colour).save(root / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "question": "what color is the shape?", "answer": colour, "category": "colour"})
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root / "train.jsonl"


def tiny_recipe(tmp_path: Path, model_dir: Path, data: Path, **train) -> Path:
    """A copy of the shipped vlm-easy-vqa recipe pointed at the tiny model and the colour data."""
    subprocess.run(["mmagent", "finetune", "cp", "vlm-easy-vqa", str(tmp_path / "r.yaml"), "--force"], check=True,
                   capture_output=True)
    recipe = yaml.safe_load((tmp_path / "r.yaml").read_text())
    recipe["model"] = {"id": str(model_dir), "quantization": "none", "ocr": "off"}
    recipe["data"] = {"train": str(data), "eval": str(data), "eval_limit": 3, "compare_base": True}
    recipe["lora"].update({"r": 4, "region_init": "zero"})  # random region rows exist only in the embedded model
    recipe["train"].update({"batch_size": 3, "max_steps": 2, "eval_steps": 2, "save_steps": 2, "max_minutes": 0, **train})
    recipe["output_dir"] = str(tmp_path / "run")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    return tmp_path / "r.yaml"


def finetune(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["mmagent", "finetune", *args], capture_output=True, text=True, **kw)


def test_list_shows_every_shipped_recipe_with_kind():
    from mmagent.finetune.recipe import shipped_recipes

    listed = finetune("list", "--json")
    assert listed.returncode == 0
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(shipped_recipes()) <= set(rows) and {"ddp_cpu", "fsdp"} <= set(rows)
    assert rows["vlm-easy-vqa"]["kind"] == "lora" and rows["vlm-easy-vqa"]["description"].endswith(").")
    table = finetune("list").stdout
    assert all(name in table for name in rows)


def test_cp_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "mine.yaml"
    assert finetune("cp", "vlm-easy-vqa", str(target)).returncode == 0
    target.write_text("edited")
    again = finetune("cp", "vlm-easy-vqa", str(target))
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr and target.read_text() == "edited"
    assert finetune("cp", "vlm-easy-vqa", str(target), "--force").returncode == 0
    assert yaml.safe_load(target.read_text())["kind"] == "lora"
    unknown = finetune("cp", "no-such-recipe", str(tmp_path))
    assert unknown.returncode == 2 and "no shipped recipe named 'no-such-recipe'" in unknown.stderr


@pytest.fixture(scope="module")
def trained(tiny_llava_dir, colour_data, tmp_path_factory) -> tuple[Path, dict]:
    """One real `finetune run --json` (with TensorBoard logging), shared by the tests that read its output."""
    root = tmp_path_factory.mktemp("trained")
    recipe = tiny_recipe(root, tiny_llava_dir, colour_data, lr=0.05, projector_lr=0.05)
    done = finetune("run", str(recipe), "--set", "train.max_steps=3", "--set", "train.report_to=[tensorboard]", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run", json.loads(done.stdout)


def test_run_trains_and_reports_where_everything_went(trained):
    out, summary = trained
    assert summary["output_dir"] == str(out) and summary["kind"] == "lora" and summary["stopped"] is None
    assert {"adapter_model.safetensors", "mmagent_adapter.json", "metrics.csv", "metrics.jsonl", "loss.png",
            "eval_results.json", "runs/"} <= set(summary["files"])
    assert not any(name.startswith("checkpoint-") for name in summary["files"])
    assert summary["metrics"]["steps"] == 3  # the --set override won over the file's max_steps=2
    assert set(summary["held_out"]) == {"adapter", "base", "blind_baseline", "adapter_vs_base", "adapter_vs_blind_baseline"}
    assert json.loads((out / "eval_results.json").read_text()) == summary["held_out"]


def test_the_text_summary_states_the_adapters_lead_with_its_interval(trained, capsys):
    from mmagent.cli.finetune import _print_summary

    _, summary = trained
    _print_summary(summary)
    lead = summary["held_out"]["adapter_vs_blind_baseline"]["all"]
    assert f"held-out adapter − blind_baseline: all {lead['points']:+.1f} pts (95% CI {lead['low']:+.1f}.." \
        in capsys.readouterr().out


def test_tensorboard_gets_the_same_losses_as_metrics_jsonl(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = trained
    (run_dir,) = [p for p in (out / "runs").iterdir() if p.is_dir()]
    events = EventAccumulator(str(run_dir))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    expected = {r["step"]: r["loss"] for r in rows if "loss" in r}
    assert logged and logged.keys() == expected.keys()
    assert all(abs(logged[k] - expected[k]) < 1e-4 for k in expected)


def test_missing_or_unknown_logger_fails_before_training(tiny_llava_dir, colour_data, tmp_path):
    recipe = str(tiny_recipe(tmp_path, tiny_llava_dir, colour_data))
    unknown = finetune("run", recipe, "--set", "train.report_to=[wandb]")
    assert unknown.returncode == 2 and "train.report_to accepts tensorboard, mlflow; got 'wandb'" in unknown.stderr
    if importlib.util.find_spec("mlflow") is None:
        missing = finetune("run", recipe, "--set", "train.report_to=[mlflow]")
        assert missing.returncode == 2 and "pip install 'mmagent[mlflow]'" in missing.stderr
        assert not (tmp_path / "run").exists()  # nothing was loaded or written


def test_chat_loads_an_adapter_trained_by_finetune_run(trained, tiny_llava_dir, colour_data, tmp_path):
    out, _ = trained
    config = tmp_path / "mmagent.yaml"
    config.write_text(yaml.safe_dump({"model": {"id": str(tiny_llava_dir), "max_new_tokens": 8,
                                                "repetition_penalty": 1.0}, "adapters": {"colours": str(out)}}))
    image = str(colour_data.parent / "img" / "0.png")

    def chat(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mmagent", "chat", "what color is the shape?", "--image", image, "--config", str(config),
                               *extra], capture_output=True, text=True)

    tuned, base = chat("--adapter", "colours"), chat()
    assert tuned.returncode == 0 and base.returncode == 0, tuned.stderr[-2000:]
    assert tuned.stdout != base.stdout  # the adapter changes what the model says


def test_run_errors_are_one_readable_line_with_status_2(tiny_llava_dir, colour_data, tmp_path):
    unknown = finetune("run", "no-such-recipe")
    assert unknown.returncode == 2 and "neither a shipped recipe" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_field = finetune("run", "vlm-easy-vqa", "--set", "train.epochz=3")
    assert bad_field.returncode == 2 and "unknown field(s) epochz" in bad_field.stderr and "epochs" in bad_field.stderr
    bad_value = finetune("run", "vlm-easy-vqa", "--set", "model.quantization=2bit")
    assert bad_value.returncode == 2 and "model.quantization must be none, 8bit or 4bit" in bad_value.stderr
    no_equals = finetune("run", "vlm-easy-vqa", "--set", "train.epochs")
    assert no_equals.returncode == 2 and "--set expects section.field=value" in no_equals.stderr
    bad_data = finetune("run", str(tiny_recipe(tmp_path, tiny_llava_dir, colour_data)),
                        "--set", f"data.train={tmp_path / 'missing.jsonl'}")
    assert bad_data.returncode == 2 and "missing.jsonl" in bad_data.stderr and "Traceback" not in bad_data.stderr


@pytest.mark.slow  # ~30 s: two training processes
def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tiny_llava_dir, colour_data, tmp_path):
    recipe = tiny_recipe(tmp_path, tiny_llava_dir, colour_data, max_steps=2000, eval_steps=1000, save_steps=1000)
    out = tmp_path / "run"
    proc = subprocess.Popen(["mmagent", "finetune", "run", str(recipe), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["stopped"] == "interrupted" and summary["held_out"] == {}
    steps = summary["metrics"]["steps"]
    assert 0 < steps < 2000 and (out / f"checkpoint-{steps}").is_dir() and "Ctrl-C" in stderr
    resumed = finetune("run", str(recipe), "--resume", "--set", f"train.max_steps={steps + 2}", "--set", "data.eval=null")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"lora run finished: {out}" in resumed.stdout and "adapter_model.safetensors" in resumed.stdout
    assert f"steps={steps + 2}" in resumed.stdout
