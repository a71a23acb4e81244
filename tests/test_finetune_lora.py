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
    sets = [f"model.id={tiny_llava_dir}", f"data.train={colour_data}", f"data.eval={colour_data}", "data.eval_limit=4",
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
    assert set(manifest["eval"]) == {"adapter", "base", "blind_baseline"}
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
