"""Where `mmagent finetune run --resume` continues: the newest checkpoint that was completely written.

The Hugging Face Trainer writes ``checkpoint-N/`` file by file (adapter, optimizer, scheduler, RNG state,
``trainer_state.json`` last) and its own ``resume_from_checkpoint=True`` takes the highest N, so a run
killed while saving (``kill -9``, power loss, a full disk) would resume from a folder missing its
optimizer or state and fail, or continue with the wrong step. Here a checkpoint counts only when its
``trainer_state.json`` parses and names its own step; newer incomplete folders are removed (they are
rewritten when training passes that step again), and ``metrics.jsonl`` loses the rows logged after the
checkpoint, which the resumed run logs again.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class ResumePoint:
    """The checkpoint to continue from and the metrics rows logged up to it (for the CSV and plot)."""

    path: Path
    step: int
    rows: list[dict[str, Any]] = field(default_factory=list)


def resume_point(out: Path, tidy: bool = True) -> ResumePoint | None:
    """The newest complete checkpoint under `out` (None: start afresh).

    With `tidy` (the process that writes: rank 0 under ``accelerate launch``; every rank gets the same
    answer without it), incomplete ``checkpoint-*`` folders newer than the one returned are deleted and
    ``metrics.jsonl`` keeps only rows up to its step (none when training starts afresh)."""
    found = sorted(((int(m.group(1)), p) for p in out.glob("checkpoint-*")
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for step, path in found:
        if _complete(path, step):
            return ResumePoint(path, step, _metrics_up_to(out / "metrics.jsonl", step, tidy))
        if tidy:
            log.warning("%s was not completely written (the run stopped while saving it); removing it", path)
            shutil.rmtree(path, ignore_errors=True)
    _metrics_up_to(out / "metrics.jsonl", 0, tidy)
    return None


def _complete(path: Path, step: int) -> bool:
    """Whether the Trainer finished writing `path`: its state, written last, is whole and names `step`."""
    try:
        state = json.loads((path / STATE).read_text())
    except (OSError, ValueError):
        return False
    return state.get("global_step") == step and any(path.glob("adapter_model.*"))


def _metrics_up_to(metrics: Path, step: int, rewrite: bool) -> list[dict[str, Any]]:
    """The rows of `metrics` logged at or before `step` (a line cut short by the kill is dropped too);
    with `rewrite` the file keeps only those."""
    if not metrics.is_file():
        return []
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("step", 0) <= step:
            rows.append(row)
    if rewrite:
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
