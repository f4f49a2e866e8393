"""Cornac side of the benchmark (and implicit's BPR as a second reference).

Run with the Cornac venv (``bash bench/setup_peers.sh`` creates it):

    bench/.envs/cornac/bin/python bench/run_cornac.py bpr|eval|vbpr|implicit-bpr

* ``bpr``: Cornac's Cython BPR (hogwild SGD over ``num_threads=2``; Cornac forces one
  thread when a seed is given, so no seed is passed), 64 factors, one update per
  training interaction per epoch. Seconds per epoch by the difference of two fits.
* ``eval``: ``cornac.eval_methods.ranking_eval`` with Recall@20 and NDCG@20 over every
  test user, full ranking (train items excluded), on the 1-epoch BPR that PrismRec's
  ``eval`` task saved (so the metrics must agree), else on Cornac's own 1-epoch BPR; the
  second of two calls is timed.
* ``vbpr``: Cornac's VBPR (torch, Adam) with the 512-d item features.
* ``implicit-bpr``: implicit's ``BayesianPersonalizedRanking`` (C++, 2 threads).

Example:
    >>> # prints: BENCH_RESULT {"library": "cornac", "task": "bpr", "seconds_per_epoch": ...}
"""
from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402  (sets thread environment variables first)


def cornac_split(with_features: bool = False):
    """Cornac's ``BaseMethod`` over the shared train/test split (test items all known)."""
    import numpy as np
    from cornac.data import ImageModality
    from cornac.eval_methods import BaseMethod

    train, test, meta = c.load_split()
    triples = lambda frame: list(zip(frame["user"], frame["item"], np.ones(len(frame))))  # noqa: E731
    extra = {}
    if with_features:
        features = c.load_item_features()
        extra["item_image"] = ImageModality(
            features=features, ids=[f"i{j}" for j in range(len(features))], normalized=False
        )
    method = BaseMethod.from_splits(
        train_data=triples(train), test_data=triples(test), exclude_unknowns=True, seed=c.SEED, **extra
    )
    return method, meta


def make_bpr(epochs: int):
    import cornac

    return cornac.models.BPR(
        k=c.FACTORS, max_iter=epochs, learning_rate=c.BPR_LR, lambda_reg=c.BPR_REG,
        num_threads=c.THREADS, verbose=False,
    )


def bpr() -> None:
    import cornac

    method, _ = cornac_split()
    per_epoch, detail = c.epoch_seconds(lambda epochs: make_bpr(epochs).fit(method.train_set), timed=3, warmup=True)
    c.emit("cornac", cornac.__version__, "bpr", seconds_per_epoch=round(per_epoch, 4),
           updates_per_epoch=method.train_set.num_ratings, factors=c.FACTORS, **detail)


SHARED_MODEL = c.DATA_DIR.parent / "prismrec_bpr_1epoch.npz"


def shared_bpr(method):
    """A Cornac BPR holding the factors PrismRec's ``eval`` task trained, or None.

    Rows are reordered from PrismRec's canonical ids (u0.., i0..) to Cornac's id maps,
    so both evaluators rank with one and the same model and must report equal metrics.
    """
    import numpy as np

    if not SHARED_MODEL.is_file():
        return None
    with np.load(SHARED_MODEL) as saved:
        user_factors, item_factors, item_bias = saved["user_factors"], saved["item_factors"], saved["item_bias"]
    train_set = method.train_set
    user_rows = np.empty(train_set.num_users, dtype=np.int64)
    for raw, index in train_set.uid_map.items():
        user_rows[index] = int(raw[1:])
    item_rows = np.empty(train_set.num_items, dtype=np.int64)
    for raw, index in train_set.iid_map.items():
        item_rows[index] = int(raw[1:])
    import cornac

    model = cornac.models.BPR(k=user_factors.shape[1], trainable=False, init_params={
        "U": np.ascontiguousarray(user_factors[user_rows]), "V": np.ascontiguousarray(item_factors[item_rows]),
        "Bi": np.ascontiguousarray(item_bias[item_rows])})
    return model.fit(train_set)


def evaluate() -> None:
    import cornac
    from cornac.eval_methods import ranking_eval
    from cornac.metrics import NDCG, Recall

    method, _ = cornac_split()
    model = shared_bpr(method)
    source = "PrismRec's 1-epoch BPR factors (same model as the prismrec eval task)"
    if model is None:
        model, source = make_bpr(1).fit(method.train_set), "Cornac's own 1-epoch BPR"
    metrics = [Recall(k=c.TOP_K), NDCG(k=c.TOP_K)]
    ranking_eval(model, metrics, method.train_set, method.test_set, exclude_unknowns=True)  # untimed warm-up
    box = {}
    seconds, cpu = c.timed_call(lambda: box.setdefault("out", ranking_eval(
        model, [Recall(k=c.TOP_K), NDCG(k=c.TOP_K)], method.train_set, method.test_set, exclude_unknowns=True)))
    averages, per_user = box["out"]
    c.emit("cornac", cornac.__version__, "eval", eval_seconds=round(seconds, 3), eval_cpu_seconds=round(cpu, 3),
           n_users_evaluated=len(per_user[0]), n_items_ranked=method.train_set.num_items,
           **{f"recall@{c.TOP_K}": averages[0], f"ndcg@{c.TOP_K}": averages[1]}, model=source,
           timing="ranking_eval(model, [Recall(20), NDCG(20)], train_set, test_set)")


def vbpr() -> None:
    import cornac

    method, _ = cornac_split(with_features=True)

    def fit(epochs: int):
        model = cornac.models.VBPR(
            k=c.VBPR_FACTORS, k2=c.VBPR_VISUAL_FACTORS, n_epochs=epochs, batch_size=c.VBPR_BATCH,
            learning_rate=c.VBPR_LR, use_gpu=False, verbose=False, seed=c.SEED,
        )
        with open(os.devnull, "w") as sink:  # VBPR prints "Optimization finished!" on stdout
            stdout, sys.stdout = sys.stdout, sink
            try:
                return model.fit(method.train_set)
            finally:
                sys.stdout = stdout

    per_epoch, detail = c.epoch_seconds(fit, timed=1, warmup=True)
    c.emit("cornac", cornac.__version__, "vbpr", seconds_per_epoch=round(per_epoch, 3),
           batch_size=c.VBPR_BATCH, factors=f"{c.VBPR_FACTORS}+{c.VBPR_VISUAL_FACTORS}",
           feature_dim=int(method.train_set.item_image.features.shape[1]), **detail)


def implicit_bpr() -> None:
    import implicit
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    method, _ = cornac_split()
    user_items = method.train_set.csr_matrix.astype("float32")
    shape = {}

    def fit(epochs: int):
        model = BayesianPersonalizedRanking(
            factors=c.FACTORS, learning_rate=c.BPR_LR, regularization=c.BPR_REG, iterations=epochs,
            num_threads=c.THREADS, random_state=c.SEED,
        )
        model.fit(user_items, show_progress=False)
        shape["item_factors"] = list(model.item_factors.shape)
        return model

    per_epoch, detail = c.epoch_seconds(fit, timed=3, warmup=True)
    c.emit("implicit", implicit.__version__, "bpr", seconds_per_epoch=round(per_epoch, 4),
           updates_per_epoch=int(user_items.nnz), factors=c.FACTORS,
           item_factors_shape=shape["item_factors"], **detail)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    tasks = {"bpr": bpr, "eval": evaluate, "vbpr": vbpr, "implicit-bpr": implicit_bpr}
    tasks[c.parse_task(list(tasks))]()
