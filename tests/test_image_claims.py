"""Chat about an image stays with what the vision side shows (issue 14): the image_claims suite, the chat
predictor's evidence (the class-name line and OCR text the model was given), the faithfulness metric on
chat answers about an image, and the grounding prompt that a request to speculate turns off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_config

from mmagent.evals.dataset import load_examples
from mmagent.evals.runner import RunOptions, faithfulness_section, run_suite
from mmagent.evals.suite import load_suite

FIXTURES = Path(__file__).resolve().parents[1] / "evals" / "fixtures" / "image_claims"
RECEIPT = FIXTURES / "receipt.png"


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    suite = load_suite("image_claims")
    return suite, load_examples(suite, tmp_path_factory.mktemp("ic"))


# ---- the suite ------------------------------------------------------------------------------------------
def test_suite_loads_with_three_kinds_of_question_over_real_images(examples):
    from PIL import Image

    suite, exs = examples
    assert (suite.task, suite.call, suite.metric) == ("image_chat", "chat", "contains")
    images = {ex.image for ex in exs}
    assert len(exs) >= 20 and len(images) >= 8
    assert {ex.category for ex in exs} == {"shown", "read", "invent"}
    cat = next(ex for ex in exs if ex.question == "What animal is this?")
    assert cat.references == ("cat",) and Path(cat.image).name == "cat.jpg"
    invent = [ex for ex in exs if ex.category == "invent"]
    assert len(invent) >= 8 and all("can't" in ex.references for ex in invent)
    for path in images:
        assert Path(path).stat().st_size <= 100_000
        with Image.open(path) as im:
            assert max(im.size) <= 400


def test_fixtures_are_regenerated_identically(tmp_path):
    from mmagent.evals import make_fixtures

    make_fixtures.image_claims(tmp_path)
    made = sorted(p.relative_to(tmp_path / "image_claims") for p in (tmp_path / "image_claims").iterdir())
    assert made == sorted(p.relative_to(FIXTURES) for p in FIXTURES.iterdir())
    for rel in made:
        assert (FIXTURES / rel).read_bytes() == (tmp_path / "image_claims" / rel).read_bytes(), rel


def test_contains_metric_is_case_and_space_insensitive():
    from mmagent.evals.metrics.contains import score_contains

    result = score_contains({"a": ["cat"], "b": ["can't", "cannot"], "c": ["8.70"]},
                            {"a": "It is an Egyptian CAT.", "b": "It was born in\n2019.", "c": "The total is 8.70"})
    assert [e.scores["answer_contains"] for e in result.examples] == [1.0, 0.0, 1.0]
    assert result.metrics()["answer_contains"] == pytest.approx(2 / 3)


# ---- faithfulness on chat answers about an image ---------------------------------------------------------
def test_metric_flags_invented_names_and_numbers_but_not_what_the_image_showed(examples):
    suite, exs = examples
    by_question = {ex.question: ex for ex in exs}
    cat, total = by_question["What animal is this?"], by_question["What is the total on this receipt?"]
    cat_seen = ["A photo of: Egyptian cat, tabby"]
    receipt_seen = ["Text in the image:\nRECEIPT\nCornerDeli\nSandwich6.50\nTea2.20\nTOTAL8.70"]
    predictions = {
        cat.id: {"answer": "This is an Egyptian cat, a hybrid coined by Captain James Benson in 1825.", "evidence": cat_seen},
        total.id: {"answer": "The total on the receipt is 8.70; the tea was 2.20.", "evidence": receipt_seen},
    }
    section = faithfulness_section(suite, [cat, total], predictions)["faithfulness"]
    flagged = {e.id: set(e.references) for e in section.examples}
    assert flagged[cat.id] == {"captain", "james", "benson", "1825"}  # "Egyptian" is on the label: supported
    assert flagged[total.id] == set()
    assert section.metrics()["unsupported_claim_rate"] == 0.5
    invented = {total.id: {"answer": "The total is 9.40, paid at Lisbury Market.", "evidence": receipt_seen}}
    flagged = faithfulness_section(suite, [total], invented)["faithfulness"].examples[0].references
    assert set(flagged) == {"9.4", "lisbury", "market"}
    no_evidence = {total.id: {"answer": "The total on the receipt is 8.70.", "evidence": []}}
    assert faithfulness_section(suite, [total], no_evidence)["faithfulness"].examples[0].references == ("8.7",)


@pytest.fixture(scope="module")
def tiny_backend(tiny_llava_dir):
    from mmagent.model.backend import HFVisionBackend

    return HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.ocr": "on"}))


def test_predictor_returns_the_ocr_text_the_prompt_got_and_the_run_reports_a_ci(tiny_backend, examples, tmp_path):
    evidence = tiny_backend.image_text(str(RECEIPT))
    assert len(evidence) == 1 and evidence[0].startswith("Text in the image:")  # a CLIP tower spells no names
    assert "8.70" in evidence[0]
    rendered, _ = tiny_backend.render([{"role": "user", "content": [{"type": "image", "image": str(RECEIPT)}]}])
    assert evidence[0] in rendered
    suite, exs = examples
    receipt_rows = [i for i, ex in enumerate(exs) if Path(ex.image).name == "receipt.png"]
    result = run_suite(suite, tiny_backend.config, RunOptions(out=tmp_path, limit=receipt_rows[0] + 1, progress=False,
                                                              resamples=50, report=False), tiny_backend)
    prediction = result.predictions[exs[receipt_rows[0]].id]
    assert set(prediction) == {"answer", "evidence"} and prediction["evidence"] == evidence
    results = json.loads((tmp_path / "results.json").read_text())
    ci = results["sections"]["faithfulness"]["ci"]["unsupported_claim_rate"]
    assert ci["low"] <= results["sections"]["faithfulness"]["metrics"]["unsupported_claim_rate"] <= ci["high"]
    assert "answer_contains" in results["sections"]["contains"]["metrics"]
    from mmagent.evals.runner import config_settings

    grounded = config_settings(suite, tiny_backend.config)["chat_prompts"]["image_grounded"]
    assert "Text in the image:" in grounded  # another chat prompt never reuses a cached answer


def test_embedded_tower_names_are_decoded_from_the_tokens_the_model_got(tmp_path):
    """On a tiny composed embedded model (random MobileNet): the evidence's label line re-encodes to the
    exact name tokens the tower puts into the image positions."""
    from helpers.tiny import tiny_mobilenet_weights, tiny_qwen2_lm

    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend
    from mmagent.model.default_vlm import models
    from mmagent.model.default_vlm.build import compose_checkpoint
    from mmagent.model.default_vlm.vision import MobileNetTower
    from mmagent.model.mobilenet import imagenet_class_names

    lm, tok = tiny_qwen2_lm(tied=True)
    target = tmp_path / "tiny-embedded"
    compose_checkpoint(models.get("qwen2.5-coder-0.5b"), lm, tok, tiny_mobilenet_weights(tmp_path / "m.pth"), target)
    backend = HFVisionBackend(load_config(overrides={"model.id": str(target), "paths.cache": str(tmp_path),
                                                     "model.ocr": "off"}, env={}))
    image = FIXTURES / "cat.jpg"
    evidence = backend.image_text(str(image))
    assert len(evidence) == 1 and evidence[0].startswith("A photo of: ")
    names = evidence[0].removeprefix("A photo of: ").split(", ")
    classes = imagenet_class_names()
    assert names and all(n in classes for n in names)
    tower = next(m for m in backend.model.modules() if isinstance(m, MobileNetTower))
    pixels = backend.processor.image_processor(images=[backend.expand(
        [{"role": "user", "content": [{"type": "image", "image": str(image)}]}])[1][0]], return_tensors="pt")["pixel_values"]
    sequence = [t for t in tower.name_sequence(tower(pixels).pooler_output[0]) if t != int(tower.pad_token[0])]
    spelled = [int(t) for t in tower.prefix_tokens]
    for i, name in enumerate(names):
        spelled += ([int(tower.separator_token[0])] if i else []) + [
            int(t) for t in tower.class_tokens[classes.index(name)] if t >= 0]
    assert sequence == spelled


# ---- the grounding prompt --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, wanted", [
    ("What animal is this?", False), ("How old is this cat?", False), ("Who took this photo?", False),
    ("What is the total on this receipt?", False), ("Where was this invented?", False),
    ("Guess how old this cat is.", True), ("Imagine where this was taken", True),
    ("Can you speculate about who took it?", True), ("Make up a name for the cat", True),
    ("Tell me a story about this picture", True), ("Pretend you are the cat", True),
])
def test_speculation_is_detected_from_the_users_words(text, wanted):
    from mmagent.prompting import wants_speculation

    assert wants_speculation(text) is wanted


def test_a_chat_turn_about_an_image_is_grounded_unless_asked_to_speculate():
    from mmagent.prompting import chat_turn, load_prompts

    grounded = load_prompts("chat").text("image_grounded")
    assert "Text in the image:" in grounded and "can't tell" in grounded
    messages, turn = chat_turn([], "What animal is this?", [str(FIXTURES / "cat.jpg")])
    assert messages[0] == {"role": "system", "content": grounded} and messages[-1] is turn
    assert turn["content"][0] == {"type": "image", "image": str(FIXTURES / "cat.jpg")}
    messages, _ = chat_turn([], "Guess how old this cat is", [str(FIXTURES / "cat.jpg")])
    assert messages[0]["role"] == "user"  # the normal prompt: no grounding
    messages, _ = chat_turn([], "What is the capital of France?")
    assert [m["role"] for m in messages] == ["user"]  # no image, no grounding
    later, _ = chat_turn([turn, {"role": "assistant", "content": "A cat."}], "How old is it?", system="Be brief.")
    assert later[0] == {"role": "system", "content": grounded + "\nBe brief."}  # the image is in the history
    messages, _ = chat_turn([], "Guess its age", [str(FIXTURES / "cat.jpg")], system="Be brief.")
    assert messages[0] == {"role": "system", "content": "Be brief."}


def test_chat_command_uses_a_copied_prompt_file(tiny_llava_dir, tmp_path, capsys):
    from mmagent.cli.chat import ChatSession
    from mmagent.model.backend import HFVisionBackend

    copy = tmp_path / "chat.yaml"
    copy.write_text("image_grounded: Only say what the picture shows.\n")
    backend = HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.ocr": "off"}))
    session = ChatSession(backend, images=[str(FIXTURES / "cat.jpg")], prompts=copy)
    seen = []
    original = backend.generate
    backend.generate = lambda messages, **kw: (seen.append(messages), original(messages, **kw))[1]
    session.ask("What animal is this?")
    session.ask("Guess its name")
    assert seen[0][0] == {"role": "system", "content": "Only say what the picture shows."}
    assert [m["role"] for m in seen[1]] == ["user", "assistant", "user"]  # the image is in the history; a guess asked


def test_chat_facts_are_the_users_words_and_what_the_model_was_shown():
    from mmagent.prompting import chat_facts, chat_turn

    shown = {"cat.jpg": ["A photo of: tabby", "Text in the image:\nMILO 2019"]}
    messages, _ = chat_turn([], "How old is this cat?", ["cat.jpg"])
    assert chat_facts(messages, "How old is this cat?", shown.__getitem__) == (
        "How old is this cat?", "A photo of: tabby", "Text in the image:\nMILO 2019")
    guess, _ = chat_turn([], "Guess how old this cat is", ["cat.jpg"])  # invention asked for: no constraint
    assert chat_facts(guess, "Guess how old this cat is", shown.__getitem__) == ()
    plain, _ = chat_turn([], "How old are cats when they stop growing?")
    assert chat_facts(plain, "How old are cats when they stop growing?", shown.__getitem__) == ()
