"""The demo run: MovieLens-100k as shipped inside the ``recbole`` package, no other data needed."""
from __future__ import annotations

from prismrec.config import ExperimentConfig, parse_config


def demo_config(*, epochs: int = 30, seed: int = 2024) -> ExperimentConfig:
    """MostPopular, BPR and LightGCN on a seeded 8:1:1 per-user split of MovieLens-100k.

    Example:
        >>> [m.name for m in demo_config().models]
        ['mostpop', 'bpr', 'lightgcn']
    """
    stopping = {"early_stopping_metric": "ndcg@20", "patience": 3, "eval_every": 2}
    raw = {
        "name": "demo: MovieLens-100k (packaged with recbole)",
        "data": {"loader": "recbole_ml100k"},
        "split": {"strategy": "random_per_user", "options": {"ratios": [0.8, 0.1, 0.1], "seed": seed}},
        "evaluation": {"ks": [10, 20], "topk": 20},
        "models": [
            {"name": "mostpop"},
            {"name": "bpr", "params": {"epochs": epochs, "seed": seed, **stopping}},
            {"name": "lightgcn", "params": {"epochs": epochs, "seed": seed, **stopping}},
        ],
    }
    return parse_config(raw, source="prismrec demo")
