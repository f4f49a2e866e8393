"""Helpers shared by the per-library runners (stdlib + numpy + pandas only).

Every runner runs in its own virtual environment, so this module must import in all
of them. It loads the split written by ``make_synthetic.py``, pins thread counts,
times work, and prints the one JSON line the driver reads.

Example:
    >>> from _common import epoch_seconds  # doctest: +SKIP
    >>> per_epoch, detail = epoch_seconds(lambda epochs: fit(epochs), warm=1, timed=3)  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

THREADS = 2
DATA_DIR = Path(__file__).resolve().parent / ".data" / "synthetic"
RESULT_PREFIX = "BENCH_RESULT "

# Before numpy/torch load their thread pools: the same 2 threads for every library.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

# Hyperparameters shared by all libraries (equal work per epoch).
FACTORS = 64
BPR_LR = 0.05
BPR_REG = 0.01
LIGHTGCN_LAYERS = 3
LIGHTGCN_BATCH = 2048
LIGHTGCN_LR = 0.001
VBPR_FACTORS = 32          # latent factors; + VBPR_VISUAL_FACTORS visual ones = 64 in total
VBPR_VISUAL_FACTORS = 32
VBPR_BATCH = 1024
VBPR_LR = 0.005
SEED = 0
TOP_K = 20


def parse_task(choices: list[str]) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=choices)
    return parser.parse_args().task


def set_torch_threads() -> None:
    import torch

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)


def load_split():
    """``(train, test, meta)``: DataFrames with raw ids ``user, item, timestamp``."""
    import pandas as pd

    if not (DATA_DIR / "meta.json").is_file():
        sys.exit(f"{DATA_DIR}: no synthetic data; run `.venv/bin/python bench/make_synthetic.py` first")
    train = pd.read_csv(DATA_DIR / "train.csv", dtype={"user": str, "item": str})
    test = pd.read_csv(DATA_DIR / "test.csv", dtype={"user": str, "item": str})
    return train, test, json.loads((DATA_DIR / "meta.json").read_text())


def load_item_features():
    """Float32 [n_items, 512]; row ``j`` belongs to raw item id ``f"i{j}"``."""
    import numpy as np

    return np.load(DATA_DIR / "item_features.npy")


def epoch_seconds(fit, *, warm: int = 1, timed: int = 2, warmup: bool = False) -> tuple[float, dict]:
    """Wall seconds per epoch as ``(T(warm + timed) - T(warm)) / timed``, plus CPU seconds.

    ``fit(epochs)`` trains a fresh model for ``epochs`` epochs. The difference cancels
    every per-fit cost (data structures, graph building, thread start-up), so only the
    training epochs remain, measured the same way for every library. The same difference
    of process CPU time (user + system, all threads) is returned as ``cpu_seconds_per_epoch``.
    ``warmup`` first runs an untimed ``fit(warm)``, so that one-time costs (JIT compilation,
    lazy imports, thread-pool start) do not land in the short fit only and shrink the difference.
    """
    if warmup:
        fit(warm)
    short, short_cpu = timed_call(lambda: fit(warm))
    long, long_cpu = timed_call(lambda: fit(warm + timed))
    per_epoch = (long - short) / timed
    return per_epoch, {
        "cpu_seconds_per_epoch": round((long_cpu - short_cpu) / timed, 4),
        "fit_seconds": {str(warm): round(short, 3), str(warm + timed): round(long, 3)},
    }


def timed_call(function) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` spent in ``function()``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - start_cpu


def peak_rss_mb() -> float:
    """Peak resident memory of this process (``ru_maxrss``, KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(library: str, version: str, task: str, **figures) -> None:
    """Print the single JSON line the driver parses."""
    record = {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "library": library, "version": version, "task": task, "python": platform.python_version(),
        "threads": THREADS, **figures, "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(RESULT_PREFIX + json.dumps(record), flush=True)
