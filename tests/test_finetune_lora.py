"""LoRA fine-tuning on tiny random models: data validation, label masking, training, resume, loading."""

import json
from pathlib import Path

import pytest
from conftest import tiny_config
from PIL import Image

from mmagent.finetune.data import DataError, read_jsonl


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    (root / "img").mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "red", "blue", "green", "red", "blue"]):
        Image.new("RGB", (32, 32), colour).save(root / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "question": "what color is the shape?", "answer": colour, "category": "colour"})
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root / "train.jsonl"


def test_all_three_formats_are_read(tmp_path, colour_data):
    image = str(colour_data.parent / "img" / "0.png")
    lines = [
        {"messages": [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Q?"}]},
                      {"role": "assistant", "content": "A."}]},
        {"image": image, "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A."}]},
        {"image": image, "question": "Q?", "answer": "A."},
    ]
    file = tmp_path / "mixed.jsonl"
    file.write_text("\n".join(json.dumps(line) for line in lines))
    examples = read_jsonl(file)
    assert [e.messages for e in examples][0] == examples[1].messages == examples[2].messages
    assert examples[0].images == [image] and examples[0].answer == "A."


def test_bad_lines_are_all_reported_with_numbers(tmp_path, colour_data):
    good = json.loads(colour_data.read_text().splitlines()[0])
    good["image"] = str(colour_data.parent / good["image"])
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    lines = [
        json.dumps(good),
        json.dumps({**good, "image": str(tmp_path / "missing.png")}),
        json.dumps({**good, "answer": "  "}),
        json.dumps({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}),
        "{not json",
        json.dumps({**good, "image": str(broken)}),
        json.dumps({"text": "no known keys"}),
    ]
    file = tmp_path / "train.jsonl"
    file.write_text("\n".join(lines))
    with pytest.raises(DataError) as info:
        read_jsonl(file)
    message = str(info.value)
    assert "6 problem(s)" in message and "nothing was trained" in message
    for expected in ("line 2: missing image", "line 3: empty assistant answer", "line 4: unknown role 'robot'",
                     "line 5: Expecting property name", "line 6: unreadable image", "line 7: expected 'messages'"):
        assert expected in message


def test_loss_sees_only_assistant_tokens(tiny_llava_dir, colour_data):
    from mmagent.finetune.collate import IGNORE, Collator, ConversationEncoder
    from mmagent.model.backend import HFVisionBackend

    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    examples = read_jsonl(colour_data)[:3]
    encoder = ConversationEncoder(backend)
    batch = Collator(backend)([encoder.encode(e) for e in examples])
    for row, example in enumerate(examples):
        kept = batch["labels"][row][batch["labels"][row] != IGNORE]
        assert backend.tokenizer.decode(kept) == example.answer + "<|im_end|>\n"
    assert batch["pixel_values"].shape[0] == 3


def test_train_resume_and_serve(tiny_llava_dir, colour_data, tmp_path, cat_photo):
    from mmagent.finetune.recipe import load_recipe, run_recipe
    from mmagent.model.backend import HFVisionBackend

    out = tmp_path / "adapter"
    sets = [f"model.id={tiny_llava_dir}", "lora.region_init=zero", f"data.train={colour_data}",
            f"data.eval={colour_data}", "data.eval_limit=4",
            "train.batch_size=4", "train.eval_steps=2", "train.save_steps=2", f"output_dir={out}", "train.max_steps=2"]
    first = run_recipe(load_recipe("vlm-easy-vqa", sets))
    assert first["metrics"]["steps"] == 2 and (out / "checkpoint-2").is_dir()
    resumed = run_recipe(load_recipe("vlm-easy-vqa", sets[:-1] + ["train.max_steps=4"]), resume=True)
    assert resumed["metrics"]["steps"] == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "eval_loss", "tokens_per_s"} <= {k for r in rows for k in r}
    assert (out / "loss.png").stat().st_size > 1000 and (out / "metrics.csv").is_file()
    manifest = json.loads((out / "mmagent_adapter.json").read_text())
    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    assert manifest["template_hash"] == backend.chat_template_hash
    assert set(manifest["eval"]) == {"adapter", "base", "blind_baseline", "adapter_vs_base", "adapter_vs_blind_baseline"}
    versus_blind = manifest["eval"]["adapter_vs_blind_baseline"]["all"]
    assert versus_blind["low"] <= versus_blind["points"] <= versus_blind["high"]
    predictions = [json.loads(line) for line in (out / "eval_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and {"question", "answer", "adapter", "base", "blind_baseline"} <= set(predictions[0])
    assert manifest["recipe"]["train"]["max_steps"] == 4 and len(manifest["data_hash"]) == 16
    backend.adapters.load("colours", out)
    question = [{"role": "user", "content": "what color is the shape?"}]
    assert backend.generate_ids(question, images=[cat_photo], adapter="colours", max_new_tokens=6) != \
        backend.generate_ids(question, images=[cat_photo], adapter=None, max_new_tokens=6)


def test_every_shipped_recipe_loads():
    from mmagent.finetune.recipe import load_recipe, shipped_recipes

    for name in shipped_recipes():
        assert load_recipe(name).kind in ("lora", "fusion-classifier")


def test_recipe_errors_name_the_field():
    from mmagent.errors import ConfigError
    from mmagent.finetune.recipe import load_recipe

    with pytest.raises(ConfigError, match="model.quantization must be none, 8bit or 4bit"):
        load_recipe("vlm-easy-vqa", ["model.quantization=2bit"])
    with pytest.raises(ConfigError, match="train.batch_size must be > 0"):
        load_recipe("vlm-easy-vqa", ["train.batch_size=0"])
    with pytest.raises(ConfigError, match="lora.region_init must be zero or random"):
        load_recipe("vlm-easy-vqa", ["lora.region_init=gaussian"])
    with pytest.raises(ConfigError, match="needs model.id=default or embedded:NAME .* Add --set lora.region_init=zero"):
        load_recipe("vlm-easy-vqa", ["model.id=llava-hf/llava-interleave-qwen-0.5b-hf"])


def test_balanced_data_gives_each_category_an_equal_share():
    from mmagent.finetune.data import Example, balance_categories

    def example(i: int, category: str) -> Example:
        return Example([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}], i, category)

    common = [example(i, "yes/no") for i in range(10)]
    examples = common[:4] + [example(10, "colour"), example(11, "shape")] + common[4:] + [example(12, "colour")]
    picked = balance_categories(examples, 6)
    # equal turns until the one shape question runs out; each category keeps its own order
    assert [e.category for e in picked] == ["yes/no", "colour", "shape", "yes/no", "colour", "yes/no"]
    assert [e.line for e in picked if e.category == "yes/no"] == [0, 1, 2]
    assert len(balance_categories(examples, 0)) == len(examples)  # 0 = all, common ones last


def test_merge_is_checked_and_a_corrupted_merge_is_caught(tiny_llava_dir, tiny_adapters, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from mmagent.errors import MMAgentError
    from mmagent.finetune.merge import _probe_inputs, check_merge, merge_adapter
    from mmagent.model.backend import HFVisionBackend

    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    result = merge_adapter(backend, tiny_adapters["a"], tmp_path / "merged")
    assert result.passed and result.token_agreement == 1.0 and result.mean_kl < 1e-6
    assert (tmp_path / "merged" / "mmagent_merge.json").is_file()
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_llava_dir), str(tiny_adapters["a"])).eval()
    with torch.no_grad():
        merged.model.language_model.layers[0].self_attn.q_proj.weight.add_(torch.randn_like(
            merged.model.language_model.layers[0].self_attn.q_proj.weight) * 2)
    bad = check_merge(reference, merged, _probe_inputs(backend))
    assert not bad.passed and (bad.token_agreement < 0.9 or bad.mean_kl > 0.05)
    with pytest.raises(MMAgentError, match="departs from base \\+ adapter"):
        merge_adapter(backend, tiny_adapters["a"], tmp_path / "refused", max_kl=-1.0)
    assert not (tmp_path / "refused").exists()


def test_adapters_cli_list_info_export(tiny_adapters, tmp_path):
    import subprocess

    env_config = tmp_path / "mmagent.yaml"
    env_config.write_text(f"adapters:\n  a: {tiny_adapters['a']}\n")
    listed = subprocess.run(["mmagent", "adapters", "list", "--json", "--config", str(env_config)], capture_output=True, text=True)
    assert listed.returncode == 0 and json.loads(listed.stdout)["a"]["rank"] == 4
    exported = subprocess.run(["mmagent", "adapters", "export", "a", "--out", str(tmp_path / "x"), "--config", str(env_config)],
                              capture_output=True, text=True)
    assert exported.returncode == 0 and (tmp_path / "x" / "adapter_model.safetensors").is_file()
    missing = subprocess.run(["mmagent", "adapters", "info", "nope", "--config", str(env_config)], capture_output=True, text=True)
    assert missing.returncode == 2 and "neither a configured adapter (a)" in missing.stderr


def test_same_seed_same_weights_and_the_manifest_says_what_they_depend_on(tiny_llava_dir, colour_data, tmp_path):
    """On one machine a seed fixes the adapter bit for bit; the manifest records the weights' hash and what
    a rerun elsewhere must match (versions, CPU instruction sets, kernel level, threads)."""
    import torch

    from mmagent.finetune.environment import weights_hash
    from mmagent.finetune.recipe import load_recipe, run_recipe

    threads = torch.get_num_threads()

    def run(name: str, seed: int) -> dict:
        sets = [f"model.id={tiny_llava_dir}", "lora.region_init=zero", f"data.train={colour_data}", "data.eval=null",
                "train.batch_size=4", "train.max_steps=3", "train.threads=1", f"seed={seed}",
                f"output_dir={tmp_path / name}"]
        return run_recipe(load_recipe("vlm-easy-vqa", sets), progress=False)

    try:
        first, again, other = run("a", 7), run("b", 7), run("c", 8)
    finally:
        torch.set_num_threads(threads)
    assert first["weights_hash"] == again["weights_hash"] == weights_hash(tmp_path / "a")
    assert first["metrics"]["train_loss"] == again["metrics"]["train_loss"]
    assert other["weights_hash"] != first["weights_hash"]
    env = first["environment"]
    assert env["threads"] == 1 and env["packages"]["torch"] == torch.__version__
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["deterministic_algorithms"] is False and env["device"] == "cpu"
    saved = json.loads((tmp_path / "a" / "mmagent_adapter.json").read_text())
    assert saved["environment"] == env and saved["weights_hash"] == first["weights_hash"]


def test_threads_must_not_be_negative():
    from mmagent.errors import ConfigError
    from mmagent.finetune.recipe import load_recipe

    with pytest.raises(ConfigError, match="train.threads must be ≥ 0"):
        load_recipe("vlm-easy-vqa", ["train.threads=-1"])
