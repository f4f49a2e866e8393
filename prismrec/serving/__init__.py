"""Serving: bundles, the top-k index, SQLite persistence and the FastAPI app (``prismrec serve``).

Example:
    >>> from prismrec.serving import load_bundle, ServingEngine, create_app  # doctest: +SKIP
    >>> app = create_app(ServingEngine(load_bundle("runs/vbpr"), state_dir="runs/vbpr/state"))  # doctest: +SKIP
"""
from prismrec.serving.bundle import Bundle, FeatureSource, load_bundle, write_bundle

__all__ = ["Bundle", "FeatureSource", "load_bundle", "write_bundle", "ServingEngine", "create_app"]


def __getattr__(name):  # the engine and app import torch/FastAPI: load them on first use
    if name == "ServingEngine":
        from prismrec.serving.engine import ServingEngine

        return ServingEngine
    if name == "create_app":
        from prismrec.serving.app import create_app

        return create_app
    raise AttributeError(name)
