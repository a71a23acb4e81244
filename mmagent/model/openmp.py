"""Keep one OpenMP thread team at a time, so PyTorch's decode steps keep libgomp's fast spin-wait.

libgomp (PyTorch's OpenMP runtime on Linux) counts the worker threads of every thread's team in the
process. While that count exceeds the CPUs it throttles its spin-wait to ~100 spins, so between the many
small parallel regions of a decode step its workers fall asleep and each region pays a futex wake-up. A
thread's team lives until the thread exits. Loading a model leaves the loading thread's team alive, and the
backend decodes in a worker thread (the streamer needs one), so on 2 cores the count is 3 > 2.

Measured (SmolLM2-135M, bfloat16, 64 greedy tokens, quiet 2-core machine): `model.generate` at 37.9 tok/s in
the thread that loaded the model, 23.0 tok/s in a new thread, 38.2 tok/s in a new thread once the loading
thread's team was released. So a thread that has computed and now waits for another to compute releases its
team first (:func:`release_idle_team`); the next parallel region it runs builds a new team (microseconds).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_PAUSE_SOFT = 1  # omp_pause_soft: free the threads, keep nothing else (OpenMP 5.0 omp_pause_resource_t)


_found: list[ctypes.CDLL | None] = []  # the search's result, once PyTorch is loaded


def _loaded_libgomp() -> ctypes.CDLL | None:
    """The libgomp PyTorch already loaded (never a new copy: RTLD_NOLOAD), or None (another runtime, or none)."""
    if _found:
        return _found[0]
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(os, "RTLD_NOLOAD"):
        return None  # not remembered: PyTorch may be imported later
    names = sorted(str(p) for p in (Path(torch.__file__).parent / "lib").glob("libgomp*.so*")) + ["libgomp.so.1"]
    for name in names:
        try:
            lib = ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue
        if hasattr(lib, "omp_pause_resource_all"):
            lib.omp_pause_resource_all.argtypes = [ctypes.c_int]
            lib.omp_pause_resource_all.restype = ctypes.c_int
            _found.append(lib)
            return lib
    _found.append(None)
    return None


def release_idle_team() -> bool:
    """Free the calling thread's OpenMP worker threads (if it has any); True when libgomp did so.

    Call it from a thread about to wait on another thread's PyTorch work (the streamer's consumer, the thread
    that loaded a model). A no-op where PyTorch uses another OpenMP runtime or none."""
    lib = _loaded_libgomp()
    return lib is not None and lib.omp_pause_resource_all(_PAUSE_SOFT) == 0
