"""PrismRec side of the benchmark. Run with the project's venv:

    .venv/bin/python bench/run_prismrec.py bpr|lightgcn|eval|vbpr

* ``bpr``: ``BPR`` with 64 factors; one epoch applies ``len(train)`` triplets.
* ``lightgcn``: ``LightGCN`` 64-d, 3 layers, batch 2048 (RecBole's default, so both
  libraries make the same number of optimiser steps and graph propagations per epoch).
* ``eval``: a BPR trained for one epoch, then ``Evaluator(ks=(20,), metrics=("recall",
  "ndcg")).evaluate(model, test, exclude=train)`` over every test user (the second of two
  calls is timed). The model's
  factors are written to ``bench/.data/prismrec_bpr_1epoch.npz`` so that Cornac's
  evaluator can rank with the very same model (its metrics must then agree).
* ``vbpr``: ``VBPR`` with the 512-d item features, 32 + 32 factors, batch 1024.

Seconds per epoch are ``(T(fit 1 + n epochs) - T(fit 1 epoch)) / n`` (see
``_common.epoch_seconds``), without validation data, so no early stopping runs.

Example:
    >>> # prints: BENCH_RESULT {"library": "prismrec", "task": "bpr", "seconds_per_epoch": ...}
"""
from __future__ import annotations

import inspect
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402  (sets thread environment variables first)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_MODEL = c.DATA_DIR.parent / "prismrec_bpr_1epoch.npz"


def load_split():
    """PrismRec ``Interactions`` for train and test with canonical id maps (u0.., i0..)."""
    from prismrec.data.interactions import IdMap, Interactions

    train_frame, test_frame, meta = c.load_split()
    users = IdMap([f"u{u}" for u in range(meta["n_users"])])
    items = IdMap([f"i{i}" for i in range(meta["n_items"])])
    build = lambda frame, name: Interactions.from_frame(  # noqa: E731
        frame, time_col="timestamp", users=users, items=items, source=name)
    return build(train_frame, "train.csv"), build(test_frame, "test.csv"), meta


def _version() -> str:
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"git {commit}"


def make_bpr(epochs: int):
    from prismrec.models import BPR

    return BPR(factors=c.FACTORS, epochs=epochs, learning_rate=c.BPR_LR, regularization=c.BPR_REG, seed=c.SEED)


def bpr() -> None:
    train, _, _ = load_split()
    model = make_bpr(1)
    per_epoch, detail = c.epoch_seconds(lambda epochs: make_bpr(epochs).fit(train), timed=3, warmup=True)
    c.emit("prismrec", _version(), "bpr", seconds_per_epoch=round(per_epoch, 4), updates_per_epoch=len(train),
           factors=c.FACTORS, batch_size=model.batch_size, **detail)


def lightgcn() -> None:
    from prismrec.models import LightGCN

    train, _, _ = load_split()

    def fit(epochs: int):
        return LightGCN(embedding_size=c.FACTORS, n_layers=c.LIGHTGCN_LAYERS, batch_size=c.LIGHTGCN_BATCH,
                        learning_rate=c.LIGHTGCN_LR, reg=1e-4, epochs=epochs, seed=c.SEED).fit(train)

    per_epoch, detail = c.epoch_seconds(fit, timed=2)
    c.emit("prismrec", _version(), "lightgcn", seconds_per_epoch=round(per_epoch, 3), batch_size=c.LIGHTGCN_BATCH,
           batches_per_epoch=-(-len(train) // c.LIGHTGCN_BATCH), **detail)


def evaluate() -> None:
    import numpy as np

    from prismrec.evaluation import Evaluator

    train, test, _ = load_split()
    model = make_bpr(1).fit(train)
    evaluator = Evaluator(ks=(c.TOP_K,), metrics=("recall", "ndcg"))
    evaluator.evaluate(model, test, exclude=train)  # untimed warm-up: lazy imports, allocator, thread pools
    box = {}
    seconds, cpu = c.timed_call(lambda: box.setdefault("result", evaluator.evaluate(model, test, exclude=train)))
    result = box["result"]
    np.savez(SHARED_MODEL, user_factors=model.user_factors_.numpy(), item_factors=model.item_factors_.numpy(),
             item_bias=model.item_bias_.numpy())
    c.emit("prismrec", _version(), "eval", eval_seconds=round(seconds, 3), eval_cpu_seconds=round(cpu, 3), n_users_evaluated=len(result.users),
           n_items_ranked=test.n_items, **{k: result[k] for k in (f"recall@{c.TOP_K}", f"ndcg@{c.TOP_K}")},
           timing="Evaluator(ks=(20,), metrics=('recall','ndcg')).evaluate(model, test, exclude=train), 1-epoch BPR")


def vbpr() -> None:
    from prismrec.models import get_model_class

    train, _, _ = load_split()
    features = {"image": c.load_item_features()}
    vbpr_class = get_model_class("vbpr")
    accepted = set(inspect.signature(vbpr_class.__init__).parameters)
    wanted = {"factors": c.VBPR_FACTORS, "visual_factors": c.VBPR_VISUAL_FACTORS, "batch_size": c.VBPR_BATCH,
              "learning_rate": c.VBPR_LR, "seed": c.SEED, "feature_names": ("image",)}
    params = {k: v for k, v in wanted.items() if k in accepted}

    def fit(epochs: int):
        return vbpr_class(epochs=epochs, **params).fit(train, item_features=features)

    per_epoch, detail = c.epoch_seconds(fit, timed=1, warmup=True)
    c.emit("prismrec", _version(), "vbpr", seconds_per_epoch=round(per_epoch, 3), params=params,
           ignored_params=sorted(set(wanted) - accepted), feature_dim=int(features["image"].shape[1]), **detail)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    c.set_torch_threads()
    from prismrec.threads import set_threads

    set_threads(c.THREADS)  # pinned, as every peer: no lowering to the free CPUs during the comparison
    import prismrec.evaluation.evaluator  # noqa: F401  (fit imports it lazily; keep that out of the timings)
    tasks = {"bpr": bpr, "lightgcn": lightgcn, "eval": evaluate, "vbpr": vbpr}
    tasks[c.parse_task(list(tasks))]()
