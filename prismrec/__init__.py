"""PrismRec: multimodal recommendation with leak-free evaluation.

Example:
    >>> import prismrec as pr
    >>> split = pr.make_split(pr.load_dataset("recbole_ml100k").interactions, "leave_one_out")  # doctest: +SKIP
"""
from prismrec.threads import wait_passively

wait_passively()  # before torch, numba and BLAS start their OpenMP pools (see prismrec.threads)

from prismrec.data import Dataset, IdMap, Interactions, ItemCatalog, Split, make_split
from prismrec.data.loaders import load_dataset
from prismrec.evaluation import EvaluationResult, Evaluator
from prismrec.models import Recommender, available_models, create_model, register

__version__ = "0.1.0"

__all__ = [
    "Dataset", "IdMap", "Interactions", "ItemCatalog", "Split", "make_split", "load_dataset",
    "Evaluator", "EvaluationResult", "Recommender", "available_models", "create_model", "register",
]
