"""Compare two runs of the same suite: per-metric deltas with paired-bootstrap significance, and the
manifest fields that differ (so a delta can be traced to the adapter, the template, the data ...).

Each run's section is rebuilt from ``results.json`` as its own result class, so the bootstrap resamples
the metric's real statistic (corpus WER as a ratio, macro-F1 recomputed), on the examples both runs share.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mmagent.errors import MMAgentError
from mmagent.evals.metrics.base import ExampleScore, ScoreResult
from mmagent.evals.metrics.bootstrap import PairedBootstrapResult, paired_bootstrap

IGNORED_FIELDS = ("settings_hash",)

# Error rates: a fall is an improvement (their sections say so in `higher_is_better`).
LOWER_IS_BETTER = frozenset({"wer", "cer", "unsupported_claim_rate", "unsupported_facts"})


@dataclass(frozen=True)
class MetricDelta:
    """B minus A for one metric of one section; `better` says whether B improved on A."""

    section: str
    metric: str
    result: PairedBootstrapResult
    higher_is_better: bool

    def to_dict(self) -> dict[str, Any]:
        r = self.result  # computed as B - A: its `a` is run B's value, its `b` run A's
        return {"section": self.section, "metric": self.metric, "a": r.b, "b": r.a, "delta": r.delta,
                "low": r.low, "high": r.high, "p_value": r.p_value, "significant": r.significant,
                "better": self.better, "n_resamples": r.n_resamples, "seed": r.seed}

    @property
    def better(self) -> Optional[bool]:
        if not self.result.significant:
            return None
        return (self.result.delta > 0) == self.higher_is_better


@dataclass(frozen=True)
class FieldDiff:
    field: str
    a: Any
    b: Any


@dataclass
class Comparison:
    run_a: Path
    run_b: Path
    suite: str
    shared: int
    only_a: int
    only_b: int
    deltas: list[MetricDelta] = field(default_factory=list)
    manifest_diffs: list[FieldDiff] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": str(self.run_a), "run_b": str(self.run_b), "suite": self.suite, "shared_examples": self.shared,
            "only_a": self.only_a, "only_b": self.only_b,
            "deltas": [d.to_dict() for d in self.deltas],
            "manifest_diffs": [{"field": f.field, "a": f.a, "b": f.b} for f in self.manifest_diffs],
        }


def _read(run: Path, name: str) -> dict[str, Any]:
    path = Path(run) / name
    if not path.is_file():
        raise MMAgentError(f"'{run}' is not an eval run folder (no {name}); give the --out folder of `mmagent eval run`.")
    return json.loads(path.read_text(encoding="utf-8"))


def rebuild(section: dict[str, Any], ids: list[str]) -> ScoreResult:
    """The section's result class over the examples `ids` (in that order), for bootstrap statistics."""
    module, _, name = section["result_class"].partition(":")
    cls = getattr(importlib.import_module(module), name)
    by_id = {e["id"]: e for e in section["examples"]}
    examples = [ExampleScore(e["id"], e["prediction"], tuple(e["references"]), dict(e["scores"]), e["missing"])
                for e in (by_id[i] for i in ids)]
    return cls(task=section["task"], examples=examples, primary=section["primary"],
               higher_is_better=section["higher_is_better"])


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def compare_runs(run_a: Path, run_b: Path, *, n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Paired bootstrap of every per-example metric (B - A) and the differing manifest fields."""
    results_a, results_b = _read(run_a, "results.json"), _read(run_b, "results.json")
    if results_a["suite"] != results_b["suite"]:
        raise MMAgentError(f"runs are of different suites ({results_a['suite']!r} vs {results_b['suite']!r}); "
                           "compare two runs of the same suite.")
    manifest_a, manifest_b = flatten(_read(run_a, "manifest.json")), flatten(_read(run_b, "manifest.json"))
    diffs = [FieldDiff(k, manifest_a.get(k), manifest_b.get(k)) for k in sorted(set(manifest_a) | set(manifest_b))
             if k not in IGNORED_FIELDS and manifest_a.get(k) != manifest_b.get(k)]
    ids_a = [p["id"] for p in results_a["predictions"]]
    ids_b = {p["id"] for p in results_b["predictions"]}
    shared = [i for i in ids_a if i in ids_b]
    if not shared:
        raise MMAgentError(f"runs {run_a} and {run_b} share no example ids; nothing to compare.")
    comparison = Comparison(Path(run_a), Path(run_b), results_a["suite"], len(shared),
                            len(ids_a) - len(shared), len(ids_b) - len(shared), manifest_diffs=diffs)
    for name, section_a in results_a["sections"].items():
        section_b = results_b["sections"].get(name)
        if section_b is None:
            continue
        a, b = rebuild(section_a, shared), rebuild(section_b, shared)
        for metric in section_a["ci"]:
            test = paired_bootstrap(len(shared), b.statistic(metric), a.statistic(metric),
                                    n_resamples=n_resamples, seed=seed)
            higher = section_a["higher_is_better"] if metric in LOWER_IS_BETTER else True
            comparison.deltas.append(MetricDelta(name, metric, test, higher))
    return comparison


def _value(value: Any, n: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= n else "…" + text[-(n - 1):]


def format_comparison(c: Comparison) -> str:
    """Plain-text table of deltas (B - A) and the differing manifest fields."""
    lines = [f"suite {c.suite}: A = {c.run_a}, B = {c.run_b}; {c.shared} shared example(s)"
             + (f" ({c.only_a} only in A, {c.only_b} only in B)" if c.only_a or c.only_b else "")]
    width = max((len(f"{d.section}:{d.metric}") for d in c.deltas), default=10)
    lines.append(f"{'metric':<{width}}  {'A':>9}  {'B':>9}  {'B-A':>9}  {'95% CI of B-A':>21}  {'p':>6}  verdict")
    for d in c.deltas:
        r = d.result
        verdict = {None: "no significant difference", True: "B better", False: "B worse"}[d.better]
        lines.append(f"{d.section + ':' + d.metric:<{width}}  {r.b:9.4f}  {r.a:9.4f}  {r.delta:+9.4f}  "
                     f"[{r.low:+9.4f}, {r.high:+9.4f}]  {r.p_value:6.3f}  {verdict}")
    lines.append("manifest fields that differ:" if c.manifest_diffs else "manifests agree on every field")
    lines += [f"  {f.field}: {_value(f.a)} -> {_value(f.b)}" for f in c.manifest_diffs]
    return "\n".join(lines)
