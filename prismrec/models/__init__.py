"""Recommenders behind one contract (see :mod:`prismrec.models.base`) and an explicit registry."""
from prismrec.models.base import NotFittedError, Recommender
from prismrec.models.registry import available_models, create_model, get_model_class, register

__all__ = ["Recommender", "NotFittedError", "register", "get_model_class", "create_model", "available_models"]
