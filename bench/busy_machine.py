"""Seconds per epoch of each model on a quiet machine and beside busy processes.

Users train on laptops and CI runners that are doing other work. For each model this
runs one child process per condition (so that no thread pool carries over), on ML-100k
(RecBole's copy, 943 users x 1,682 items x 100k ratings) with seeded random 512-d
"image" and 384-d "text" arrays for the content models, and prints one table row:

* quiet: nothing else running (pause other jobs first);
* ``--busy N``: N other processes, each spinning a single-threaded 512 x 512 numpy
  matmul, started before the child and killed after it.

Seconds per epoch are ``(T(fit 1 + n epochs) - T(fit 1 epoch)) / n`` after an untimed
1-epoch warm-up fit (JIT compilation, lazy imports), without validation data, so one
-off costs (graph building) cancel. The evaluator row times one full-ranking evaluation
of a fitted BPR over every user. ``--threads`` pins the thread count
(``prismrec.threads.set_threads``); by default PrismRec sizes its pools to the free CPUs.

Example (about 6 minutes on 2 cores):
    PYTHONPATH=. .venv/bin/python bench/busy_machine.py --models bpr lightgcn vbpr freedom evaluator --busy 1 4
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("bpr", "lightgcn", "vbpr", "freedom", "evaluator")
#: a spinning single-threaded process: one core's worth of load
SPINNER = ("import os\nos.environ['OPENBLAS_NUM_THREADS'] = '1'\nimport numpy as np\n"
           "a = np.random.default_rng(0).random((512, 512))\nwhile True:\n    a @ a\n")


def child(model_name: str, timed_epochs: int, threads: int | None) -> dict:
    """Runs in the child process: load, warm up, time; returns the figures."""
    import resource
    import warnings

    import numpy as np

    from prismrec.data.loaders import load_dataset
    from prismrec.evaluation import Evaluator
    from prismrec.models import create_model
    from prismrec.threads import set_threads

    warnings.simplefilter("ignore")
    if threads:
        set_threads(threads)
    train = load_dataset("recbole_ml100k").interactions
    rng = np.random.default_rng(0)
    features = {"image": rng.random((train.n_items, 512), dtype=np.float32),
                "text": rng.standard_normal((train.n_items, 384), dtype=np.float32)}

    def fit(epochs: int):
        name = "bpr" if model_name == "evaluator" else model_name
        params = {"epochs": epochs, **({"feature_names": ("image", "text")} if name in ("vbpr", "freedom") else {})}
        return create_model(name, params).fit(train, item_features=features)

    def timed(function) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    if model_name == "evaluator":
        model, evaluator = fit(1), Evaluator(ks=(20,), metrics=("recall", "ndcg"))
        evaluator.evaluate(model, train)
        seconds = min(timed(lambda: evaluator.evaluate(model, train)) for _ in range(3))
    else:
        fit(1)
        seconds = (timed(lambda: fit(1 + timed_epochs)) - timed(lambda: fit(1))) / timed_epochs
    return {"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run_condition(model_name: str, n_busy: int, timed_epochs: int, threads: int | None) -> dict:
    spinners = [subprocess.Popen([sys.executable, "-c", SPINNER]) for _ in range(n_busy)]
    try:
        if spinners:
            time.sleep(1.0)  # let them reach full speed
        command = [sys.executable, __file__, "--child", model_name, "--timed-epochs", str(timed_epochs)]
        if threads:
            command += ["--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if done.returncode != 0:
            raise RuntimeError(f"{model_name} with {n_busy} busy: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--busy", type=int, nargs="+", default=[1], help="numbers of busy processes to run beside")
    parser.add_argument("--timed-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="pin the thread count (default: free CPUs)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.timed_epochs, args.threads)))
        return
    busy_columns = " | ".join(f"{n} busy (s) | ratio" for n in args.busy)
    print(f"| model | quiet (s) | {busy_columns} | peak RSS (GB) |")
    print("|---|---|" + "---|---|" * len(args.busy) + "---|")
    for model_name in args.models:
        quiet = run_condition(model_name, 0, args.timed_epochs, args.threads)
        cells = []
        for n_busy in args.busy:
            busy = run_condition(model_name, n_busy, args.timed_epochs, args.threads)
            cells.append(f"{busy['seconds']:.3f} | {busy['seconds'] / quiet['seconds']:.2f}x")
        unit = "evaluation" if model_name == "evaluator" else "epoch"
        print(f"| {model_name} ({unit}) | {quiet['seconds']:.3f} | {' | '.join(cells)} | {quiet['peak_rss_gb']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
