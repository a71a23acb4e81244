"""LoRA recipes with data.task: classify — classify-flow conversations, classification metrics before/after."""

import json
from pathlib import Path

import pytest
from PIL import Image

COLOURS = ["red", "blue", "green"]


def write_rows(root: Path, name: str, colours: list[str]) -> Path:
    """Fusion-format rows {text, image, label, category}: the label is the image's colour."""
    (root / "img").mkdir(exist_ok=True)
    rows = []
    for i, colour in enumerate(colours):
        image = root / "img" / f"{name}-{i}.png"
        Image.new("RGB", (32, 32), colour).save(image)
        rows.append({"text": f"a picture, number {i}", "image": f"img/{image.name}", "label": colour,
                     "category": "warm" if colour == "red" else "cool"})
    (root / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root / f"{name}.jsonl"


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("classify-data")
    return write_rows(root, "train", COLOURS * 3), write_rows(root, "test", ["red", "red", "blue", "green"])


def test_shipped_vlm_classify_recipe_is_the_fusion_task():
    from mmagent.finetune.classify import label_set
    from mmagent.finetune.recipe import load_recipe

    recipe = load_recipe("vlm-classify")
    fusion = load_recipe("fusion-classifier")  # the other route to the same task
    assert recipe.data.task == "classify" and recipe.data.train == fusion.data.train and recipe.data.eval == fusion.data.test
    assert len(label_set(recipe)) == 13


def test_rows_become_classify_flow_conversations(splits):
    from mmagent.errors import ConfigError
    from mmagent.finetune.classify import classification_examples

    train, _ = splits
    examples = classification_examples(str(train), COLOURS, 0, 0)
    first = examples[0]
    assert first.messages[0]["role"] == "system" and "red, blue, green" in first.messages[0]["content"]
    user = first.messages[1]["content"]
    assert user[0]["type"] == "image" and Path(user[0]["image"]).is_file()
    assert "a picture, number 0" in user[1]["text"]
    assert first.messages[-1] == {"role": "assistant", "content": "red"} and first.category == "warm"
    with pytest.raises(ConfigError, match="outside data.labels"):
        classification_examples(str(train), ["red", "blue"], 0, 0)


def test_train_and_score_with_the_flow_and_by_generation(tiny_llava_dir, splits, tmp_path):
    from mmagent.evals.metrics.classification import score_classification

    from mmagent.finetune.classify import blind_predictions, classification_examples, evaluate_classifier
    from mmagent.finetune.recipe import load_recipe, run_recipe
    from mmagent.fusion.data import blind_baseline, load_source

    train, test = splits
    out = tmp_path / "run"
    sets = [f"model.id={tiny_llava_dir}", "model.ocr=off", f"data.train={train}", f"data.eval={test}", "data.scoring=flow",
            "lora.r=4", "lora.region_init=zero", "train.batch_size=3", "train.max_steps=2", "train.eval_steps=2", "train.save_steps=2",
            "train.lr=0.01", f"output_dir={out}", f"data.limit={3 * len(COLOURS)}"]  # all rows: blind sees every question
    recipe = load_recipe("vlm-classify", sets)
    manifest = run_recipe(recipe, progress=False)
    assert manifest["labels"] == sorted(COLOURS)
    scores = manifest["eval"]
    assert scores["scoring"] == "flow" and {"adapter", "base", "blind_baseline"} <= set(scores)
    for arm in ("adapter", "base", "blind_baseline"):
        assert set(scores[arm]) == {"accuracy", "macro_precision", "macro_recall", "macro_f1", "accuracy_by_category"}
        assert all(0 <= scores[arm][k] <= 1 for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1"))
    # The blind baseline agrees with the fusion classifier's own implementation on the same rows.
    assert scores["blind_baseline"]["accuracy"] == pytest.approx(blind_baseline(load_source(str(train)), load_source(str(test))))
    train_ex = classification_examples(str(train), sorted(COLOURS), 0, 0)
    test_ex = classification_examples(str(test), sorted(COLOURS), 0, 0)
    refs = {str(i): e.meta["label"] for i, e in enumerate(test_ex)}
    blind = score_classification(refs, dict(zip(refs, blind_predictions(train_ex, test_ex))))
    assert scores["blind_baseline"]["macro_f1"] == round(blind.macro_f1, 4)
    lead = scores["adapter_vs_blind_baseline"]["all"]  # paired bootstrap over the same held-out rows
    assert lead["points"] == pytest.approx(100 * (scores["adapter"]["accuracy"] - scores["blind_baseline"]["accuracy"]), abs=0.02)
    assert lead["low"] <= lead["points"] <= lead["high"] and "adapter_vs_base" in scores
    recipe.data.scoring = "generate"
    generated = evaluate_classifier(recipe, out, train_ex, test_ex, sorted(COLOURS), progress=False)
    assert generated["scoring"] == "generate" and 0 <= generated["adapter"]["accuracy"] <= 1
    assert json.loads((out / "eval_results.json").read_text()) == generated


def test_classify_fields_are_validated():
    from mmagent.errors import ConfigError
    from mmagent.finetune.recipe import load_recipe

    with pytest.raises(ConfigError, match="data.task must be answer or classify"):
        load_recipe("vlm-classify", ["data.task=sort"])
    with pytest.raises(ConfigError, match="data.scoring must be generate or flow"):
        load_recipe("vlm-classify", ["data.scoring=vote"])
    with pytest.raises(ConfigError, match="at least two distinct labels"):
        load_recipe("vlm-classify", ["data.labels=[a, a]"])
