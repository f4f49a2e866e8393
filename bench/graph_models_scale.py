"""How graph building and an epoch grow with the catalogue: FREEDOM and LATTICE (and any
registered content model) on synthetic data with 512-d image and 384-d text features.

For each item count N the data has N users, ``10 N`` interactions (Zipf-skewed items) and
random features. The kNN graphs are built once and timed (they are cached in a temporary
folder, keyed by features and parameters); then a 1-epoch fit runs with the cache warm.
"setup" is that fit's time outside the epoch (reading the cached graphs, the user-item
graph, the network); "epoch" is the epoch itself (``epoch_seconds_``), which includes
LATTICE's per-epoch learned graph, as the model requires. Each (model, size) runs in its
own process, so peak RSS is that run's maximum. "dense N x N" is what one float32 item-item
matrix would take (LATTICE's paper code holds several).

Example (one thread: the 10k point takes about a minute, 40k about 4 minutes, 100k about 12; figures in bench/results/2026-12-02-speed.md):
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/graph_models_scale.py --items 10000
    PYTHONPATH=. python bench/graph_models_scale.py --items 10000 40000 100000 --models freedom lattice --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import torch

from prismrec.data import IdMap, Interactions
from prismrec.models import create_model
from prismrec.models.content import item_content_graph
from prismrec.threads import set_threads


def synthetic(n_items: int, seed: int = 0):
    """``(train, features)``: n_items users and items, 10 interactions per item on average."""
    rng = np.random.default_rng(seed)
    n_interactions = 10 * n_items
    users = rng.integers(0, n_items, n_interactions)
    items = (rng.zipf(1.2, n_interactions) + rng.integers(0, n_items, n_interactions)) % n_items
    frame = pd.DataFrame({"user": users.astype(str), "item": items.astype(str)}).drop_duplicates()
    ids = IdMap([str(i) for i in range(n_items)])
    train = Interactions.from_frame(frame, users=ids, items=IdMap([str(i) for i in range(n_items)]))
    features = {"image": rng.normal(size=(n_items, 512)).astype(np.float32),
                "text": rng.normal(size=(n_items, 384)).astype(np.float32)}
    return train, features


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(model_name: str, n_items: int, threads: int) -> dict:
    set_threads(threads)
    train, features = synthetic(n_items)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        for array in features.values():  # the frozen graphs FREEDOM and LATTICE use
            item_content_graph(array, k=10, binary=model_name == "freedom", cache_dir=cache)
        graph_seconds = time.perf_counter() - start
        model = create_model(model_name, {"epochs": 1, "graph_cache_dir": cache})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            model.fit(train, item_features=features)
        fit_seconds = time.perf_counter() - start
    epoch_seconds = model.epoch_seconds_[0]
    return {"model": model_name, "items": n_items, "interactions": len(train), "threads": torch.get_num_threads(),
            "graph_s": round(graph_seconds, 2), "setup_s": round(fit_seconds - epoch_seconds, 2),
            "epoch_s": round(epoch_seconds, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
            "dense_gb": round(4 * n_items**2 / 1e9, 1), "load_average": os.getloadavg()}


def measure_in_child(model_name: str, n_items: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", model_name, "--items", str(n_items), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{model_name} at {n_items} items: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000])
    parser.add_argument("--models", nargs="+", default=["freedom", "lattice"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.items[0], args.threads)))
        return
    print("| model | items | interactions | graph build (s) | setup (s) | epoch (s) | peak RSS (GB) | dense N x N (GB) |")
    print("|---|---|---|---|---|---|---|---|")
    for n_items in args.items:
        for model_name in args.models:
            row = measure_in_child(model_name, n_items, args.threads)
            print(f"| {row['model']} | {row['items']:,} | {row['interactions']:,} | {row['graph_s']:.1f} | "
                  f"{row['setup_s']:.1f} | {row['epoch_s']:.1f} | {row['peak_rss_gb']:.2f} | {row['dense_gb']:.1f} |",
                  flush=True)
            print(json.dumps(row), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
