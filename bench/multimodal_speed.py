"""PrismRec side of the multimodal speed comparison with MMRec (FREEDOM, LATTICE, BM3).

On the synthetic set of ``make_synthetic.py`` (20k users x 10k items, 400k training
pairs) with its 512-d image and 384-d text arrays, each model runs in its own process
with 2 threads (``set_threads(2)``, as the peers) and MMRec's hyperparameters (the first
value of each grid where MMRec's yaml lists one: FREEDOM dropout 0.8, reg_weight 1e-4;
LATTICE lr 1e-3, reg_weight 1e-4; BM3 1 layer, dropout 0.3, reg_weight 0.1; embedding 64,
batch 2048). Seconds per epoch are ``(T(fit 1 + n) - T(fit 1)) / n`` after a warm-up fit
(``_common.epoch_seconds``), without validation, with the frozen kNN graphs cached, so
graph building (timed on its own) cancels. Peak RSS is the model process's maximum.

The peer's side is run from outside the repository, with MMRec's own trainer on CPU
(``pre_epoch_processing`` + ``_train_epoch``, timed per epoch after one warm-up epoch).

Example (about 5 minutes on 2 cores):
    .venv/bin/python bench/multimodal_speed.py --models freedom lattice bm3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402  (sets thread environment variables first)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("freedom", "lattice", "bm3")


def child(model_name: str, timed_epochs: int) -> dict:
    import numpy as np

    from prismrec.models import create_model
    from prismrec.models.content import item_content_graph
    from prismrec.threads import set_threads
    from run_prismrec import load_split

    warnings.simplefilter("ignore")
    set_threads(c.THREADS)
    train, _, _ = load_split()
    features = {"image": c.load_item_features(), "text": np.load(c.DATA_DIR / "item_text_features.npy")}
    with tempfile.TemporaryDirectory() as cache:
        graph_seconds = 0.0
        if model_name != "bm3":  # BM3 has no item-item graph
            start = time.perf_counter()
            for array in features.values():
                item_content_graph(array, k=10, binary=model_name == "freedom", cache_dir=cache)
            graph_seconds = time.perf_counter() - start
        cache_param = {} if model_name == "bm3" else {"graph_cache_dir": cache}

        def fit(epochs: int):
            return create_model(model_name, {"epochs": epochs, "seed": c.SEED, **cache_param}).fit(
                train, item_features=features)

        per_epoch, detail = c.epoch_seconds(fit, timed=timed_epochs, warmup=True)
    return {"library": "prismrec", "model": model_name, "threads": c.THREADS, "graph_s": round(graph_seconds, 2),
            "seconds_per_epoch": round(per_epoch, 3), "n_train": len(train), **detail,
            "peak_rss_gb": round(c.peak_rss_mb() / 1024, 3), "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--timed-epochs", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(c.RESULT_PREFIX + json.dumps(child(args.child, args.timed_epochs)), flush=True)
        return
    for model_name in args.models:
        done = subprocess.run([sys.executable, __file__, "--child", model_name, "--timed-epochs", str(args.timed_epochs)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = [line for line in done.stdout.splitlines() if line.startswith(c.RESULT_PREFIX)]
        print(lines[-1] if lines else f"{model_name}: failed: {done.stderr.strip()[-800:]}", flush=True)


if __name__ == "__main__":
    main()
