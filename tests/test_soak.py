"""A bounded soak of a real `mmagent serve` process (slow): 200 mixed requests (chat, chat with an image,
embeddings, the qa, support, summarize and classify flows) from 8 concurrent clients on the smallest
embedded model — no failed request, open descriptors and threads back to their warmed-up counts, resident
memory growth under 150 MB, no per-request temporary folder left. The figures come from
benchmarks/soak_bench.py, which the README's numbers were measured with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import SMALL_MODEL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytestmark = [pytest.mark.slow, pytest.mark.embedded_model]


def test_200_mixed_requests_leak_nothing(tmp_path, small_model_dir):
    from soak_bench import soak

    figures = soak(f"embedded:{SMALL_MODEL}", requests=200, clients=8, folder=tmp_path, rss_bound_mb=150.0)
    missed = {name: t for name, t in figures["targets"].items() if not t["met"]}
    assert not missed, (missed, figures["before"], figures["after"], figures["errors"])
    assert sum(row["requests"] for row in figures["rows"]) == 200
