"""Kill a real subprocess with SIGKILL at a point its own progress output shows (the fault tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time


def kill_after_progress(cmd: list[str], done: int, total: int, timeout: float = 600.0) -> tuple[int, str]:
    """Run `cmd`; once its tqdm bar on stderr reports `done` of `total`, SIGKILL it.

    Returns (the count last reported, stderr so far). Fails the test when the process ended by itself or
    never got that far: a kill that comes after the end tests nothing."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seen, reported = b"", 0
    deadline = time.monotonic() + timeout
    try:
        while reported < done:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk or time.monotonic() > deadline:
                break
            seen += chunk
            counts = re.findall(rb"\| *(\d+)/%d \[" % total, seen)
            reported = int(counts[-1]) if counts else 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    text = seen.decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"it ended before the kill (status {proc.returncode}): {text[-1500:]}"
    assert reported >= done, f"it never reported {done}/{total}: {text[-1500:]}"
    return reported, text
