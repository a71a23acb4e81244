"""A shipped suite on the embedded default VLM (the same code path as `mmagent eval run`)."""

import json

import pytest

pytestmark = pytest.mark.embedded_model


def test_vqa_shapes_runs_on_the_default_model(small_backend, tmp_path):
    from mmagent.evals.runner import RunOptions, run_suite
    from mmagent.evals.suite import load_suite

    result = run_suite(load_suite("vqa_shapes"), small_backend.config,
                       RunOptions(out=tmp_path, limit=3, progress=False, resamples=200), small_backend)
    results = json.loads((tmp_path / "results.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert results["count"] == 3 and all(isinstance(p["prediction"], str) for p in results["predictions"])
    assert any(p["prediction"] for p in results["predictions"])  # the default model answers something
    assert 0.0 <= results["sections"]["vqa"]["metrics"]["accuracy"] <= 100.0
    assert manifest["model_id"] == "embedded:smollm2-135m" and manifest["chat_template_hash"] == small_backend.chat_template_hash
    assert (tmp_path / "report.html").is_file()
    assert result.generated == 3
