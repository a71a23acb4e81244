"""A run's report: ``report.md`` and ``report.html`` with PNG plots (score bars with CIs, per-category
scores, the confusion matrix for classification) and the worst examples of each section."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmagent.evals.runner import RunResult

WORST = 5


def _pyplot() -> Any:
    from mmagent.errors import require

    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _score_bars(run: "RunResult", path: Path) -> Path:
    plt = _pyplot()
    names, values, lows, highs = [], [], [], []
    for section, result in run.sections.items():
        for metric, ci in run.intervals[section].items():
            names.append(f"{section}:{metric}" if len(run.sections) > 1 else metric)
            values.append(ci.estimate)
            lows.append(max(0.0, ci.estimate - ci.low))
            highs.append(max(0.0, ci.high - ci.estimate))
    fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(names) + 2), 3.2))
    ax.bar(range(len(names)), values, yerr=[lows, highs], capsize=3, color="#4c78a8")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_title(f"{run.suite.name}: scores with 95% bootstrap CIs")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def per_category(run: "RunResult") -> dict[str, dict[str, float]]:
    """Mean of each section's primary metric per example category: {section: {category: mean}}."""
    out: dict[str, dict[str, float]] = {}
    for section, result in run.sections.items():
        buckets: dict[str, list[float]] = {}
        for ex in result.examples:
            category = run.categories.get(ex.id)
            if category is not None:
                buckets.setdefault(category, []).append(ex.scores[result.primary])
        if buckets:
            out[section] = {c: sum(v) / len(v) for c, v in sorted(buckets.items())}
    return out


def _category_bars(run: "RunResult", table: dict[str, dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    section = next(iter(table))
    cats = table[section]
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(cats) + 2), 3))
    ax.bar(list(cats), list(cats.values()), color="#f58518")
    ax.set_title(f"{run.suite.name}: {run.sections[section].primary} per category")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _confusion(result: Any, path: Path) -> Path:
    plt = _pyplot()
    labels, matrix = result.labels, result.confusion
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(labels), 1 + 0.7 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plots(run: "RunResult") -> list[tuple[str, Path]]:
    folder = run.out / "plots"
    folder.mkdir(exist_ok=True)
    plots = [("Scores", _score_bars(run, folder / "scores.png"))]
    table = per_category(run)
    if table:
        plots.append(("Per category", _category_bars(run, table, folder / "categories.png")))
    for name, result in run.sections.items():
        if getattr(result, "confusion", None):
            plots.append((f"Confusion matrix ({name})", _confusion(result, folder / f"confusion_{name}.png")))
    return plots


def _short(value: Any, n: int = 120) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _tables(run: "RunResult") -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the metric tables, per-category table and worst examples."""
    out = []
    for name, result in run.sections.items():
        rows = []
        for metric, value in result.metrics().items():
            ci = run.intervals[name].get(metric)
            rows.append([metric, f"{value:.4f}", f"{ci.low:.4f} .. {ci.high:.4f}" if ci else ""])
        out.append((f"Metrics: {name} ({result.count} examples)", ["metric", "value", "95% CI"], rows))
    for section, cats in per_category(run).items():
        out.append((f"Per category: {section} {run.sections[section].primary}", ["category", "mean"],
                    [[c, f"{v:.4f}"] for c, v in cats.items()]))
    for name, result in run.sections.items():
        rows = [[e.id, _short(e.prediction), _short(" | ".join(e.references)), f"{e.scores[result.primary]:.4f}"]
                for e in result.worst(WORST)]
        out.append((f"Worst examples: {name} by {result.primary}", ["id", "prediction", "references", result.primary], rows))
    return out


def _markdown(run: "RunResult", plots: list[tuple[str, Path]]) -> str:
    m = run.manifest
    lines = [f"# Eval report: {run.suite.name}", "",
             f"Task `{run.suite.task}`, call `{run.suite.call}`, model `{m.get('model_id')}` "
             f"({m.get('precision', 'n/a')}), adapter `{m.get('adapter')}`, seed {m['seed']}, "
             f"{len(run.predictions)} examples ({run.generated} generated, {run.cached} from cache).", ""]
    for title, header, rows in _tables(run):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    for title, path in plots:
        lines += [f"## {title}", "", f"![{title}]({path.relative_to(run.out)})", ""]
    return "\n".join(lines)


def _html(run: "RunResult", plots: list[tuple[str, Path]]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(run.suite.name)}</title>",
             "<style>body{font-family:sans-serif;max-width:960px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head><body>",
             f"<h1>Eval report: {e(run.suite.name)}</h1>",
             f"<p>model <code>{e(str(run.manifest.get('model_id')))}</code>, adapter "
             f"<code>{e(str(run.manifest.get('adapter')))}</code>, seed {run.manifest['seed']}, "
             f"{len(run.predictions)} examples</p>"]
    for title, header, rows in _tables(run):
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for title, path in plots:
        parts.append(f"<h2>{e(title)}</h2><img src='{e(str(path.relative_to(run.out)))}' alt='{e(title)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run: "RunResult") -> list[Path]:
    """Write report.md, report.html and plots/*.png into the run folder; returns the files written."""
    plots = _plots(run)
    md, page = run.out / "report.md", run.out / "report.html"
    md.write_text(_markdown(run, plots), encoding="utf-8")
    page.write_text(_html(run, plots), encoding="utf-8")
    return [md, page] + [p for _, p in plots]
