"""Thread budgets: the configured count wins, otherwise the free CPUs; pools never exceed it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from prismrec import threads


@pytest.fixture(autouse=True)
def _unpinned(monkeypatch):
    monkeypatch.delenv("PRISMREC_THREADS", raising=False)
    previous = torch.get_num_threads()
    yield
    threads.set_threads(None)
    torch.set_num_threads(previous)


def test_configured_count_wins_over_a_busy_machine(monkeypatch):
    monkeypatch.setattr(threads, "free_cpus", lambda: 1)
    threads.set_threads(2)
    assert threads.budget() == 2
    with threads.thread_budget():
        assert torch.get_num_threads() == 2


def test_unconfigured_budget_is_the_free_cpus_under_torchs_count(monkeypatch):
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "free_cpus", lambda: 1)
    with threads.thread_budget():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2  # restored
    monkeypatch.setattr(threads, "free_cpus", lambda: 8)
    assert threads.budget() == 2  # torch's count is the ceiling


def test_environment_variable_pins_and_is_checked(monkeypatch):
    monkeypatch.setattr(threads, "free_cpus", lambda: 1)
    monkeypatch.setenv("PRISMREC_THREADS", "3")
    assert threads.budget() == 3
    monkeypatch.setenv("PRISMREC_THREADS", "two")
    with pytest.raises(ValueError, match="PRISMREC_THREADS must be a positive integer, got 'two'"):
        threads.budget()
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        threads.set_threads(0)


def test_nested_budgets_keep_the_outer_count(monkeypatch):
    torch.set_num_threads(2)
    calls = []
    monkeypatch.setattr(threads, "budget", lambda: calls.append(1) or 1)
    with threads.thread_budget():
        with threads.thread_budget():  # an evaluation inside a fit: no second probe
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert calls == [1] and torch.get_num_threads() == 2


def test_a_spinning_process_counts_as_busy():
    assert 1 <= threads.usable_cpus() <= (os.cpu_count() or 1)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        readings = [threads.busy_elsewhere() for _ in range(5)]
    finally:
        spinner.kill()
        spinner.wait()
    assert max(readings) >= 1.0  # the spinner is always runnable (R), whatever else runs


def _run(code: str, env: dict | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_importing_prismrec_asks_openmp_to_wait_passively_unless_the_user_chose():
    code = "import os, prismrec; print(os.environ['OMP_WAIT_POLICY'], os.environ['KMP_BLOCKTIME'])"
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=clean)
    assert done.stdout.strip() == "PASSIVE 0", done.stderr
    assert _run(code, {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "200"}) == "ACTIVE 200"


@pytest.mark.slow
def test_threads_one_holds_for_lightgcn_and_freedom_and_no_other_thread_works():
    """With threads 1, a graph big enough for the parallel kernels (16k nodes, 128-d features whose
    kNN products would use multi-threaded BLAS) leaves torch and numba at 1 thread, and threads
    other than the main one do (almost) none of the CPU work."""
    out = _run("""
        import json, os, warnings
        import numba, numpy as np, pandas as pd, torch
        from prismrec.data import IdMap, Interactions
        from prismrec.models import create_model
        from prismrec.threads import set_threads

        def ticks():
            out = {}
            for task in os.listdir('/proc/self/task'):
                fields = open(f'/proc/self/task/{task}/stat').read().rsplit(')', 1)[1].split()
                out[int(task)] = int(fields[11]) + int(fields[12])
            return out

        set_threads(1)
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({'user': rng.integers(0, 12000, 60000).astype(str),
                              'item': rng.integers(0, 4000, 60000).astype(str)}).drop_duplicates()
        train = Interactions.from_frame(frame, users=IdMap([str(i) for i in range(12000)]),
                                        items=IdMap([str(i) for i in range(4000)]))
        features = {'image': rng.random((4000, 128), dtype=np.float32),
                    'text': rng.random((4000, 128), dtype=np.float32)}
        result = {}
        for name in ('lightgcn', 'freedom'):
            before = ticks()
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                create_model(name, {'epochs': 1}).fit(train, item_features=features)
            after = ticks()
            main = after[os.getpid()] - before[os.getpid()]
            others = sum(after[t] - before.get(t, 0) for t in after if t != os.getpid())
            result[name] = [torch.get_num_threads(), numba.get_num_threads(), main, others]
        print(json.dumps(result))
    """)
    result = json.loads(out)
    for name, (torch_threads, numba_threads, main_ticks, other_ticks) in result.items():
        assert (torch_threads, numba_threads) == (1, 1), name
        assert other_ticks <= 0.05 * main_ticks + 5, (name, main_ticks, other_ticks)
