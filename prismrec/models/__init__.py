"""Recommenders behind one contract (see :mod:`prismrec.models.base`) and an explicit registry."""
from prismrec.models.base import NotFittedError, Recommender
from prismrec.models.bm3 import BM3
from prismrec.models.bpr import BPR
from prismrec.models.freedom import FREEDOM
from prismrec.models.grcn import GRCN
from prismrec.models.itemknn_cbf import ItemKNNCBF
from prismrec.models.lattice import LATTICE
from prismrec.models.lgmrec import LGMRec
from prismrec.models.foundation import FoundationRecommender
from prismrec.models.lightgcn import LightGCN
from prismrec.models.mgcn import MGCN
from prismrec.models.mmgcl import MMGCL
from prismrec.models.mmgcn import MMGCN
from prismrec.models.mostpop import MostPopular
from prismrec.models.slmrec import SLMRec
from prismrec.models.sasrec import SASRec
from prismrec.models.vbpr import VBPR
from prismrec.models.registry import available_models, create_model, get_model_class, register

register("mostpop", MostPopular)
register("bpr", BPR)
register("lightgcn", LightGCN)
register("vbpr", VBPR)
register("itemknn_cbf", ItemKNNCBF)
register("freedom", FREEDOM)
register("lattice", LATTICE)
register("bm3", BM3)
register("mgcn", MGCN)
register("lgmrec", LGMRec)
register("mmgcn", MMGCN)
register("grcn", GRCN)
register("slmrec", SLMRec)
register("mmgcl", MMGCL)
register("foundation", FoundationRecommender)
register("sasrec", SASRec)

__all__ = [
    "Recommender", "NotFittedError", "register", "get_model_class", "create_model", "available_models",
    "MostPopular", "BPR", "LightGCN", "VBPR", "ItemKNNCBF", "FREEDOM", "LATTICE", "BM3", "MGCN", "LGMRec",
    "MMGCN", "GRCN", "SLMRec", "MMGCL", "SASRec", "FoundationRecommender",
]
