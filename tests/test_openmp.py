"""The calling thread's OpenMP team is released (mmagent.model.openmp): its worker threads leave the process,
and PyTorch computes correctly afterwards with a new team. Why it matters (decode speed) is in the module."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libgomp is PyTorch's runtime on Linux")

CHILD = textwrap.dedent("""
    import os, threading, torch
    from mmagent.model.openmp import release_idle_team
    torch.set_num_threads(2)

    def threads():
        return len(os.listdir("/proc/self/task"))

    a = torch.randn(512, 512)
    expected = (a @ a).sum().item()
    before = threads()          # main thread's team (1 worker) is alive after the parallel matmul
    released = release_idle_team()
    after = threads()
    again = (a @ a).sum().item()  # a new team is built for the next parallel region
    rebuilt = threads()
    print(released, before, after, rebuilt, abs(again - expected) < 1e-3 * abs(expected))
""")


def test_release_frees_the_worker_threads_and_compute_goes_on():
    env = dict(os.environ, OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    released, before, after, rebuilt, same = done.stdout.split()
    assert released == "True", "libgomp was not found among the libraries PyTorch loaded"
    assert int(after) == int(before) - 1, (before, after)  # the one worker of a 2-thread team left
    assert int(rebuilt) == int(before), (before, rebuilt)
    assert same == "True"


def test_before_torch_is_imported_a_no_op_that_is_not_remembered():
    code = ("import sys; from mmagent.model.openmp import release_idle_team; first = release_idle_team(); "
            "import torch; torch.ones(4096, 4096).sum(); print(first, release_idle_team())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]  # found once torch is imported
