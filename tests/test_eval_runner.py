"""`mmagent eval run/compare` end to end on the tiny random LLaVA (real transformers, peft, Chroma,
faster-whisper): outputs, scoring identical to `eval score`, resume, determinism, compare."""

import json
from pathlib import Path

import pytest
from conftest import tiny_config

from mmagent.evals.runner import CACHE, RunOptions, run_suite
from mmagent.evals.suite import load_suite


@pytest.fixture(scope="module")
def tiny_backend(tiny_llava_dir, tiny_adapters):
    from mmagent.model.backend import HFVisionBackend

    config = tiny_config(tiny_llava_dir, **{f"adapters.{k}": str(v) for k, v in tiny_adapters.items()})
    return HFVisionBackend(config)


def run(name, backend, out, **options):
    suite = load_suite(name) if not isinstance(name, Path) else load_suite(name)
    return run_suite(suite, backend.config, RunOptions(out=out, progress=False, resamples=200, **options), backend)


def read(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def test_run_writes_results_manifest_and_report(tiny_backend, tmp_path):
    result = run("squad_mini", tiny_backend, tmp_path, limit=3)
    results, manifest = read(tmp_path, "results.json"), read(tmp_path, "manifest.json")
    section = results["sections"]["squad"]
    assert results["count"] == 3 and [p["id"] for p in results["predictions"]] == ["sq1", "sq2", "sq3"]
    assert set(section["metrics"]) == {"exact_match", "f1"}
    for name, ci in section["ci"].items():
        assert ci["low"] <= section["metrics"][name] <= ci["high"]
    assert [e["prediction"] for e in section["examples"]] == [p["prediction"] for p in results["predictions"]]
    info = tiny_backend.info()
    assert manifest["chat_template_hash"] == info.chat_template_hash
    assert manifest["model_path"] == info.path and manifest["precision"] == info.precision
    assert manifest["decoding"]["max_new_tokens"] == 16 and manifest["seed"] == 0 and manifest["limit"] == 3
    assert manifest["libraries"]["transformers"] and manifest["libraries"]["torch"]
    assert set(manifest["model_files_sha256"]) >= {"config.json", "tokenizer.json"}
    from mmagent.evals.suite import sha256_file

    assert manifest["data_files"] == {str(load_suite("squad_mini").data): sha256_file(load_suite("squad_mini").data)}
    report = (tmp_path / "report.md").read_text()
    assert "exact_match" in report and "Worst examples" in report and "plots/scores.png" in report
    assert (tmp_path / "plots" / "scores.png").stat().st_size > 1000
    assert "<img src='plots/scores.png'" in (tmp_path / "report.html").read_text()
    assert result.generated == 3 and result.cached == 0


def test_scores_equal_the_official_format_scorer(tiny_backend, tmp_path):
    """What the runner reports equals `mmagent eval score` on its predictions and the suite's data file."""
    from mmagent.evals.scoring import score_files

    suite = load_suite("vqa_shapes")
    run("vqa_shapes", tiny_backend, tmp_path, limit=6)
    results = read(tmp_path, "results.json")
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps([{"question_id": int(p["id"]), "answer": p["prediction"]}
                                       for p in results["predictions"]]))
    # the official scorer scores every reference; restrict the references to the examples run
    annotations = json.loads(suite.data.read_text())
    annotations["annotations"] = annotations["annotations"][:6]
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(annotations))
    official = score_files("vqa", predictions, refs)
    assert results["sections"]["vqa"]["metrics"] == official.metrics()


def test_resume_after_interruption_reuses_cached_answers(tiny_backend, tmp_path):
    first = run("squad_mini", tiny_backend, tmp_path, limit=2)
    lines = (tmp_path / CACHE).read_text().splitlines()
    assert len(lines) == 2 and first.generated == 2
    (tmp_path / CACHE).write_text("\n".join(lines) + '\n{"key": "torn', encoding="utf-8")  # killed mid-write
    second = run("squad_mini", tiny_backend, tmp_path, limit=5)
    assert (second.cached, second.generated) == (2, 3)
    assert [second.predictions[i] for i in ("sq1", "sq2")] == [first.predictions[i] for i in ("sq1", "sq2")]
    third = run("squad_mini", tiny_backend, tmp_path, limit=5)
    assert (third.cached, third.generated) == (5, 0)


def test_a_changed_prompt_or_adapter_is_not_served_from_cache(tiny_backend, tmp_path):
    run("squad_mini", tiny_backend, tmp_path, limit=2)
    assert run("squad_mini", tiny_backend, tmp_path, limit=2, adapter="a").generated == 2
    text = load_suite("squad_mini").path.read_text().replace("shortest exact phrase", "exact phrase")
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace("../fixtures/", str(load_suite("squad_mini").path.parent.parent / "fixtures") + "/"))
    assert run(edited, tiny_backend, tmp_path, limit=2).generated == 2


def test_sampling_is_deterministic_with_a_seed(tiny_backend, tmp_path):
    text = load_suite("summarize_mini").path.read_text().replace("temperature: 0.0", "temperature: 1.0")
    fixtures = str(load_suite("summarize_mini").path.parent.parent / "fixtures") + "/"
    suite_file = tmp_path / "sampled.yaml"
    suite_file.write_text(text.replace("../fixtures/", fixtures))
    a = run(suite_file, tiny_backend, tmp_path / "a", limit=2, seed=7)
    b = run(suite_file, tiny_backend, tmp_path / "b", limit=2, seed=7)
    assert a.predictions == b.predictions
    assert read(tmp_path / "a", "results.json")["sections"] == read(tmp_path / "b", "results.json")["sections"]


def test_compare_base_and_adapter(tiny_backend, tmp_path):
    from mmagent.evals.compare import compare_runs, format_comparison

    base = run("squad_mini", tiny_backend, tmp_path / "base", limit=4)
    tuned = run("squad_mini", tiny_backend, tmp_path / "a", limit=4, adapter="a")
    assert base.predictions != tuned.predictions  # the random adapter changes greedy answers
    comparison = compare_runs(tmp_path / "base", tmp_path / "a", n_resamples=200)
    assert {(d.section, d.metric) for d in comparison.deltas} == {  # every generating suite reports faithfulness
        ("squad", "exact_match"), ("squad", "f1"), ("faithfulness", "unsupported_claim_rate"),
        ("faithfulness", "unsupported_facts")}
    # a fall in an error rate is an improvement: the verdict must read it that way round
    assert {d.metric: d.higher_is_better for d in comparison.deltas} == {
        "exact_match": True, "f1": True, "unsupported_claim_rate": False, "unsupported_facts": False}
    f1 = next(d for d in comparison.deltas if d.metric == "f1").to_dict()
    assert f1["a"] == pytest.approx(base.sections["squad"].metrics()["f1"])
    assert f1["b"] == pytest.approx(tuned.sections["squad"].metrics()["f1"])
    assert f1["delta"] == pytest.approx(f1["b"] - f1["a"])
    fields = {d.field: (d.a, d.b) for d in comparison.manifest_diffs}
    assert fields["adapter"] == (None, "a") and fields["adapter_sha256"][1]
    assert "model_path" not in fields and "chat_template_hash" not in fields
    text = format_comparison(comparison)
    assert "squad:f1" in text and "adapter: null -> a" in text


def test_classification_suite_scores_the_flow_and_plots_a_confusion_matrix(tiny_backend, tmp_path):
    result = run("classify_mini", tiny_backend, tmp_path, limit=4)
    section = read(tmp_path, "results.json")["sections"]["classification"]
    assert {p for p in result.predictions.values()} <= {"sports", "weather", "invoice"}
    assert sum(map(sum, section["confusion"])) == 4
    assert (tmp_path / "plots" / "confusion_classification.png").is_file()


def test_document_qa_suite_with_images(tiny_backend, tmp_path):
    run("docvqa_text", tiny_backend, tmp_path, limit=2, batch_size=2)
    section = read(tmp_path, "results.json")["sections"]["anls"]
    assert set(section["metrics"]) == {"anls"} and section["count"] == 2


def test_retrieval_suite_on_a_real_chroma(tmp_path):
    from mmagent.config import load_config

    suite = load_suite("retrieval_mini")
    result = run_suite(suite, load_config(env={}), RunOptions(out=tmp_path, limit=4, progress=False, resamples=100))
    metrics = result.sections["retrieval"].metrics()
    assert metrics["recall@5"] >= 0.75  # MiniLM finds these paraphrases
    assert result.manifest["embedder"] == "default" and result.manifest["model_id"] is None
    assert all(len(r) == 5 for r in result.predictions.values())


def test_cli_eval_suite_shorthand_and_compare(tiny_llava_dir, tiny_adapters, tmp_path, monkeypatch, capsys):
    from mmagent.cli import main

    monkeypatch.setenv("MMAGENT_MODEL_ID", str(tiny_llava_dir))
    monkeypatch.setenv("MMAGENT_MODEL_MAX_NEW_TOKENS", "8")
    adapter = f"a={tiny_adapters['a']}"
    assert main(["eval", "--suite", "squad_mini", "--limit", "2", "--out", str(tmp_path / "base")]) == 0
    assert "squad:exact_match" in capsys.readouterr().out
    assert main(["eval", "run", "--suite", "squad_mini", "--limit", "2", "--out", str(tmp_path / "a"),
                 "--adapter", "a", "--adapter-path", adapter, "--no-report", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("[\n"):])
    assert summary[0]["suite"] == "squad_mini" and summary[0]["generated"] == 2
    assert (tmp_path / "base" / "report.html").is_file() and not (tmp_path / "a" / "report.html").exists()
    assert main(["eval", "compare", str(tmp_path / "base"), str(tmp_path / "a"), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out[out.index('{\n  "run_a"'):])
    assert any(d["field"] == "adapter" for d in data["manifest_diffs"])
    assert main(["eval", "run", "--suite", "squad_mini", "--adapter", "zzz"]) == 2
    assert "unknown adapter 'zzz'" in capsys.readouterr().err


def test_customer_service_suite_runs_the_support_flow_on_a_fresh_database(tiny_backend, tmp_path):
    """A hand-off request needs no model turn: the flow escalates in code; expectations are checked both ways."""
    tasks = [{"id": "human", "messages": ["I want to talk to a person please"],
              "expected_state": {"tickets": [{"kind": "escalation"}]}, "required_tools": ["escalate_to_human"],
              "forbidden_tools": ["create_ticket"], "handoff": True},
             {"id": "wrong", "messages": ["Can I speak to a human?"], "expected_state": {"tickets": []},
              "required_tools": [], "forbidden_tools": ["escalate_to_human"], "handoff": False}]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (tmp_path / "s.yaml").write_text("name: cs\ntask: customer_service\ndata: tasks.jsonl\n")
    result = run(tmp_path / "s.yaml", tiny_backend, tmp_path / "out")
    rows = {e.id: e.scores for e in result.sections["support"].examples}
    assert rows["human"] == {"success": 1.0, "end_state": 1.0, "required_tools": 1.0, "forbidden_tools": 1.0, "handoff": 1.0}
    assert rows["wrong"] == {"success": 0.0, "end_state": 0.0, "required_tools": 1.0, "forbidden_tools": 0.0, "handoff": 0.0}
    assert result.predictions["human"]["tickets"][0]["kind"] == "escalation"
    assert (tmp_path / "out" / "support" / "human" / "support_demo.sqlite").is_file()


def test_support_metric_end_state_counts_unexpected_tickets():
    from mmagent.evals.metrics.support import end_state_met

    refund = {"order_id": 1001, "kind": "refund", "amount": 34.9}
    assert end_state_met([refund], [{"order_id": 1001, "amount": 34.90}])
    assert not end_state_met([refund, refund], [{"order_id": 1001}])  # a duplicate ticket is a wrong state
    assert not end_state_met([], [{"order_id": 1001}])
    assert end_state_met([], [])
