"""Recommenders behind one contract (see :mod:`prismrec.models.base`) and an explicit registry."""
from prismrec.models.base import NotFittedError, Recommender
from prismrec.models.bpr import BPR
from prismrec.models.foundation import FoundationRecommender
from prismrec.models.lightgcn import LightGCN
from prismrec.models.mostpop import MostPopular
from prismrec.models.sasrec import SASRec
from prismrec.models.vbpr import VBPR
from prismrec.models.registry import available_models, create_model, get_model_class, register

register("mostpop", MostPopular)
register("bpr", BPR)
register("lightgcn", LightGCN)
register("vbpr", VBPR)
register("foundation", FoundationRecommender)
register("sasrec", SASRec)

__all__ = [
    "Recommender", "NotFittedError", "register", "get_model_class", "create_model", "available_models",
    "MostPopular", "BPR", "LightGCN", "VBPR",
]
