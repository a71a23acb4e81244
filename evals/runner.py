"""Run a suite: read its data, predict (batched, cached per example so an interrupted run resumes), score
with the official metrics, add bootstrap CIs, and write ``results.json``, ``manifest.json`` and a report.

The cache (``<out>/cache.jsonl``) keys each prediction by example id and a hash of everything that
decides it (suite prompt/call/decoding, model, template, adapter bytes, seed), so a rerun with the same
settings only generates what is missing, and a changed setting never reuses a stale answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from mmagent.errors import MMAgentError
from mmagent.evals.dataset import EvalExample, load_corpus, load_examples
from mmagent.evals.metrics.base import ConfidenceInterval, ScoreResult
from mmagent.evals.suite import Suite, sha256_file

if TYPE_CHECKING:
    from mmagent.config import Config

log = logging.getLogger(__name__)
CACHE = "cache.jsonl"


@dataclass(frozen=True)
class RunOptions:
    """How to run: output folder, adapter (None = base model), --limit, seed, bootstrap resamples."""

    out: Path
    adapter: Optional[str] = None
    limit: Optional[int] = None
    seed: int = 0
    resamples: int = 1000
    batch_size: Optional[int] = None  # None = the suite's
    progress: bool = True
    report: bool = True


@dataclass
class RunResult:
    """A finished run: scored sections (one per metric family; the pipeline has three), CIs, counts."""

    out: Path
    suite: Suite
    sections: dict[str, ScoreResult]
    intervals: dict[str, dict[str, ConfidenceInterval]]
    predictions: dict[str, Any]
    categories: dict[str, str]
    manifest: dict[str, Any]
    generated: int = 0
    cached: int = 0
    files: list[Path] = field(default_factory=list)


# ---- cache -------------------------------------------------------------------------------------------
def settings_hash(suite: Suite, model: Optional[dict[str, Any]], seed: int,
                  config_settings: Optional[dict[str, Any]] = None) -> str:
    """Hash of what decides a prediction (not --limit, batch size or metric, which do not change answers).
    `config_settings`: config fields a flow or memory search decides by (see :func:`config_settings`)."""
    keys = ("model_id", "model_path", "precision", "chat_template_hash", "model_files_sha256", "adapter", "adapter_sha256")
    decisive = {"suite": suite.settings(), "model": {k: (model or {}).get(k) for k in keys}, "seed": seed}
    if config_settings:
        decisive["config"] = config_settings
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_settings(suite: Suite, config: "Config") -> Optional[dict[str, Any]]:
    """The config fields that change a memory or flow suite's answers (`--set flows.qa_mode=extractive`,
    `--set memory.search=dense`), and the chat prompt file a chat suite's answers follow, so a run with
    other settings never reuses a cached answer."""
    if suite.call == "chat":  # the chat prompt file (its grounding prompt) decides the answers too
        from mmagent.prompting import load_prompts

        return {"chat_prompts": load_prompts("chat").texts}
    if suite.call == "memory":
        return {"memory.search": config.memory.search, "memory.embedder": config.memory.embedder}
    if suite.call.startswith("flow:"):
        return {"flows": dataclasses.asdict(config.flows), "memory.search": config.memory.search,
                "memory.embedder": config.memory.embedder}
    return None


def read_cache(path: Path, key: str) -> dict[str, Any]:
    """Predictions cached under `key` ({example id: prediction}); torn last lines are skipped."""
    out: dict[str, Any] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write
            continue
        if row.get("key") == key:
            out[str(row["id"])] = row["prediction"]
    return out


def _append_cache(path: Path, key: str, examples: list[EvalExample], predictions: list[Any]) -> None:
    torn = False
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, 2)
            torn = f.read(1) != b"\n"  # a run killed mid-line: start on a fresh line
    with path.open("a", encoding="utf-8") as f:
        if torn:
            f.write("\n")
        for ex, pred in zip(examples, predictions):
            f.write(json.dumps({"key": key, "id": ex.id, "prediction": pred}, ensure_ascii=False) + "\n")
        f.flush()


# ---- scoring -----------------------------------------------------------------------------------------
def score_sections(suite: Suite, examples: list[EvalExample], predictions: dict[str, Any]) -> dict[str, ScoreResult]:
    """Score predictions with the suite's metric; the pipeline scores ASR, retrieval and answer separately."""
    from mmagent.evals.metrics import anls, classification, retrieval, rouge, speech, squad, vqa

    refs = {ex.id: ex.references for ex in examples}
    m = suite.metric
    if suite.call == "flow:qa" and m != "pipeline":  # the qa flow's answer; an abstention is the empty answer
        predictions = {i: p["answer"] if p.get("answered", True) else "" for i, p in predictions.items()}
    if suite.call == "chat":  # a chat answer with the evidence it was given
        predictions = {i: p["answer"] for i, p in predictions.items()}
    if m == "squad":
        return {m: squad.score_squad_v1(refs, predictions)}
    if m == "squad_v2":
        return {m: squad.score_squad_v2(refs, predictions)}
    if m == "vqa":
        types = {ex.id: ex.category for ex in examples if ex.category}
        return {m: vqa.score_vqa(refs, predictions, types)}
    if m == "anls":
        return {m: anls.score_anls(refs, predictions)}
    if m == "rouge":
        return {m: rouge.score_rouge(refs, predictions)}
    if m == "wer":
        return {m: speech.score_speech(refs, predictions)}
    if m == "classification":
        return {m: classification.score_classification({i: r[0] for i, r in refs.items()}, predictions)}
    if m == "retrieval":
        return {m: retrieval.score_retrieval({ex.id: ex.relevance for ex in examples}, predictions, suite.ks)}
    if m == "pipeline":
        stage = lambda name: {i: p[name] for i, p in predictions.items()}  # noqa: E731
        return {
            "asr": speech.score_speech({ex.id: (ex.extra["transcript"],) for ex in examples}, stage("transcript")),
            "retrieval": retrieval.score_retrieval({ex.id: ex.relevance for ex in examples}, stage("ranked"), suite.ks),
            "answer": squad.score_squad_v1(refs, stage("answer")),
        }
    if m == "contains":
        from mmagent.evals.metrics.contains import score_contains

        return {m: score_contains(refs, predictions)}
    if m == "support":
        from mmagent.evals.metrics.support import score_support

        return {m: score_support({ex.id: ex.extra for ex in examples}, predictions)}
    raise MMAgentError(f"suite '{suite.name}': metric {m!r} has no scorer in this version")


GENERATING_METRICS = ("squad", "squad_v2", "rouge", "support", "pipeline", "contains")


def faithfulness_section(suite: Suite, examples: list[EvalExample], predictions: dict[str, Any]) -> dict[str, ScoreResult]:
    """``{"faithfulness": unsupported_claim_rate ...}`` for suites whose outputs are generated text (qa,
    summarize, support, the spoken-qa pipeline); empty for the others.

    Each output is checked against what its answerer was shown: the example's context or document and
    question; for flows also the retrieved corpus documents, the transcript and the tool results; for
    image chat the class names and OCR text the vision side gave the model (the prediction's `evidence`).
    A declined question (the flow's abstention) states nothing. Other visual suites are not scored: their
    sources include the image's text, which their predictions do not carry."""
    from mmagent.evals.metrics.faithfulness import score_faithfulness

    if suite.metric not in GENERATING_METRICS:
        return {}
    corpus = load_corpus(suite.corpus).documents if suite.corpus else {}
    outputs, sources = {}, {}
    for ex in examples:
        prediction = predictions.get(ex.id)
        shown = [ex.question, ex.context or "", ex.document or "", *map(str, ex.extra.get("messages") or [])]
        if isinstance(prediction, dict):
            declined = prediction.get("answered") is False
            outputs[ex.id] = "" if declined else str(prediction.get("answer") or "")
            shown += [prediction.get("transcript") or "", *map(str, prediction.get("evidence") or [])]
            shown += [corpus.get(str(d), "") for d in prediction.get("ranked") or []]
        else:
            outputs[ex.id] = str(prediction or "")
        sources[ex.id] = shown
    return {"faithfulness": score_faithfulness(outputs, sources)}


def intervals(result: ScoreResult, n_resamples: int, seed: int) -> dict[str, ConfidenceInterval]:
    """95 % percentile-bootstrap CIs of every aggregate metric the result can recompute on a resample
    (per-example means, ratios, set metrics, subsets such as SQuAD v2.0's HasAns_f1); counts get none."""
    out = {}
    for name in result.metrics():
        try:
            out[name] = result.confidence_interval(name, n_resamples=n_resamples, seed=seed)
        except MMAgentError:  # an aggregate with no per-example form, e.g. `total`
            continue
    return out


# ---- the run -----------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def _predict(predictor: Any, todo: list[EvalExample], batch_size: int, cache: Path, key: str,
             progress: bool, label: str) -> dict[str, Any]:
    from tqdm.auto import tqdm

    out: dict[str, Any] = {}
    with tqdm(total=len(todo), desc=label, unit="ex", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            predictions = predictor.predict(batch)
            _append_cache(cache, key, batch, predictions)
            out.update({ex.id: p for ex, p in zip(batch, predictions)})
            bar.update(len(batch))
    return out


def _media_hash(examples: list[EvalExample]) -> Optional[str]:
    files = sorted({p for ex in examples for p in (ex.image, ex.audio) if p})
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(sha256_file(Path(f)).encode())
    return digest.hexdigest()


def run_suite(suite: Suite, config: "Config", options: RunOptions, backend: Any = None) -> RunResult:
    """Run `suite` and write its outputs to `options.out` (see the module docstring)."""
    from mmagent.evals.manifest import build_manifest, model_section
    from mmagent.evals.predictors import PREDICTORS

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    _seed_everything(options.seed)
    examples = load_examples(suite, out)
    if options.limit is not None:
        examples = examples[: max(0, options.limit)]
    if not examples:
        raise MMAgentError(f"suite '{suite.name}' has no examples to run (data {suite.data}, --limit {options.limit}).")
    predictor = PREDICTORS[suite.call](suite, config, options.adapter, options.seed, backend)
    predictor.workdir = out
    model = model_section(predictor.backend, options.adapter) if predictor.uses_model() else predictor.model_info()
    if options.adapter is not None and model is None:
        log.warning("suite '%s' calls %s, which does not use the VLM: --adapter %s changes nothing",
                    suite.name, suite.call, options.adapter)
    key = settings_hash(suite, model, options.seed, config_settings(suite, config))
    cache = out / CACHE
    predictions = read_cache(cache, key)
    todo = [ex for ex in examples if ex.id not in predictions]
    cached = len(examples) - len(todo)
    if cached:
        log.info("suite %s: %d of %d predictions come from %s", suite.name, cached, len(examples), cache)
    batch_size = options.batch_size or suite.batch_size
    predictions.update(_predict(predictor, todo, batch_size, cache, key, options.progress, suite.name))
    predictions = {ex.id: predictions[ex.id] for ex in examples}
    sections = score_sections(suite, examples, predictions)
    sections.update(faithfulness_section(suite, examples, predictions))
    cis = {name: intervals(result, options.resamples, options.seed) for name, result in sections.items()}
    manifest = build_manifest(suite, model=model, config=config, seed=options.seed, limit=options.limit,
                              settings_hash=key, media_sha256=_media_hash(examples))
    categories = {ex.id: ex.category for ex in examples if ex.category}
    result = RunResult(out, suite, sections, cis, predictions, categories, manifest, len(todo), cached)
    write_outputs(result, options.report)
    return result


def results_dict(run: RunResult) -> dict[str, Any]:
    """The JSON of ``results.json``: per section its metrics, CIs and every example's prediction and scores."""
    sections = {}
    for name, result in run.sections.items():
        body = result.to_dict(examples=True)
        body.update(
            result_class=f"{type(result).__module__}:{type(result).__qualname__}",
            primary=result.primary,
            higher_is_better=result.higher_is_better,
            ci={k: ci.to_dict() for k, ci in run.intervals[name].items()},
        )
        sections[name] = body
    return {
        "suite": run.suite.name,
        "task": run.suite.task,
        "metric": run.suite.metric,
        "count": len(run.predictions),
        "generated": run.generated,
        "cached": run.cached,
        "seed": run.manifest["seed"],
        "sections": sections,
        "categories": run.categories,
        "predictions": [{"id": i, "prediction": p, "category": run.categories.get(i)} for i, p in run.predictions.items()],
    }


def write_outputs(run: RunResult, report: bool = True) -> None:
    """results.json, manifest.json and (unless `report` is False) report.md/report.html with plots."""
    out = run.out
    (out / "results.json").write_text(json.dumps(results_dict(run), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps(run.manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    run.files = [out / "results.json", out / "manifest.json"]
    if report:
        from mmagent.evals.report import write_report

        run.files += write_report(run)
