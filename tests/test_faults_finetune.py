"""Faults in fine-tuning (issue 16): `mmagent finetune run` killed with SIGKILL part-way; `--resume` continues
from the last complete checkpoint and ends where an uninterrupted run with the same seed ends.

The default test trains the tiny random LLaVA (a real Trainer, real peft, real checkpoints) in a real
subprocess and kills it once its progress bar passes a checkpoint; the slow one does the same with the
embedded default model on easy-vqa."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from helpers.kill import kill_after_progress
from test_finetune_lora import colour_data  # noqa: F401  (the fixture: 8 one-colour images)

from mmagent.finetune.resume import resume_point

MMAGENT = str(Path(sys.executable).parent / "mmagent")


def losses(out: Path) -> list[tuple[int, float, float]]:
    """(step, loss, learning rate) of every training log row, in order."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], float(r["loss"]), float(r["learning_rate"])) for r in rows if "loss" in r]


def adapter_weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


def assert_same_run(resumed: Path, reference: Path, loss_tol: float, weight_tol: float) -> None:
    got, want = losses(resumed), losses(reference)
    assert [s for s, _, _ in got] == [s for s, _, _ in want]  # every step logged once, none twice
    for (step, loss, lr), (_, ref_loss, ref_lr) in zip(got, want):
        assert abs(loss - ref_loss) <= loss_tol and lr == pytest.approx(ref_lr, rel=1e-6), (step, loss, ref_loss)
    a, b = adapter_weights(resumed), adapter_weights(reference)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= weight_tol, worst


TINY_STEPS, TINY_KILL = 40, 10


def tiny_sets(model: Path, data: Path, out: Path) -> list[str]:
    return [f"model.id={model}", "lora.region_init=zero", f"data.train={data}", "data.eval=null",
            "train.batch_size=2", f"train.max_steps={TINY_STEPS}", "train.save_steps=4", "train.eval_steps=2",
            "train.max_minutes=0", f"output_dir={out}"]


def test_finetune_killed_midway_resumes_to_the_same_end(tiny_llava_dir, colour_data, tmp_path):
    from mmagent.finetune.recipe import load_recipe, run_recipe

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_recipe(load_recipe("vlm-easy-vqa", tiny_sets(tiny_llava_dir, colour_data, reference)), progress=False)

    sets = tiny_sets(tiny_llava_dir, colour_data, killed)
    cmd = [MMAGENT, "finetune", "run", "vlm-easy-vqa", *[a for s in sets for a in ("--set", s)]]
    reported, _ = kill_after_progress(cmd, TINY_KILL, TINY_STEPS)
    assert not (killed / "mmagent_adapter.json").exists()  # it really died mid-run
    point = resume_point(killed, tidy=False)
    assert point is not None and TINY_KILL - 4 <= point.step < TINY_STEPS

    result = run_recipe(load_recipe("vlm-easy-vqa", sets), resume=True, progress=False)
    assert result["metrics"]["steps"] == TINY_STEPS
    assert_same_run(killed, reference, loss_tol=1e-4, weight_tol=1e-5)
    with (killed / "metrics.csv").open() as fh:  # the CSV and plot cover the whole run, not only the resumed part
        logged = [int(row["step"]) for row in csv.DictReader(fh) if row.get("loss")]
    assert logged == [step for step, _, _ in losses(reference)]


def test_resume_skips_a_checkpoint_the_kill_left_half_written(tmp_path):
    """What a kill while the Trainer saves leaves: a newer checkpoint without its state (written last)."""
    out = tmp_path / "run"
    for step in (4, 8):
        folder = out / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (out / "checkpoint-8" / "trainer_state.json").write_text('{"global_step": 8, "log_hist')  # cut short
    (out / "checkpoint-12").mkdir()  # the folder only
    rows = [{"step": s, "loss": 1.0 / s} for s in (2, 4, 6, 8, 10)]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 12, "lo')

    assert resume_point(out, tidy=False).step == 4 and (out / "checkpoint-8").is_dir()  # looking changes nothing
    point = resume_point(out)
    assert (point.path, point.step) == (out / "checkpoint-4", 4)
    assert [r["step"] for r in point.rows] == [2, 4]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4]


@pytest.mark.slow
def test_default_model_finetune_killed_midway_resumes_to_the_same_end(small_model_dir, tmp_path):
    """vlm-easy-vqa on the embedded default model, 24 steps of batch 4, killed after step 13."""
    from mmagent.finetune.recipe import load_recipe, run_recipe

    steps = 24

    def sets(out: Path) -> list[str]:
        return ["data.eval=null", "train.batch_size=4", f"train.max_steps={steps}", "train.save_steps=6",
                "train.eval_steps=2", "train.max_minutes=0", f"output_dir={out}"]

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_recipe(load_recipe("vlm-easy-vqa", sets(reference)), progress=False)
    cmd = [MMAGENT, "finetune", "run", "vlm-easy-vqa", *[a for s in sets(killed) for a in ("--set", s)]]
    kill_after_progress(cmd, 13, steps)
    assert resume_point(killed, tidy=False).step == 12
    run_recipe(load_recipe("vlm-easy-vqa", sets(killed)), resume=True, progress=False)
    assert_same_run(killed, reference, loss_tol=1e-3, weight_tol=1e-4)
