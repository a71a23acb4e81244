"""The server's heap settings (mmagent.serve.heap) reach glibc, and trimming is rate-limited. The memory
figures they are for come from benchmarks/soak_bench.py (a real `mmagent serve` under 200 requests)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from mmagent.serve.heap import Trimmer

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt and malloc_trim")


@glibc
def test_arena_limit_is_taken_by_glibc():
    code = "from mmagent.serve.heap import limit_arenas; print(limit_arenas(2))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr[-1000:]


@glibc
def test_trim_runs_at_most_once_per_interval():
    trimmer = Trimmer(interval=60)
    assert trimmer.trim() is True
    assert trimmer.trim() is False  # within the interval: the next request does not walk the heap again
    assert Trimmer(interval=0).trim() is True
