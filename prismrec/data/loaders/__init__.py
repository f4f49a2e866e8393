"""Loaders: one module per format, each returning a :class:`prismrec.data.Dataset`.

Use a loader directly, or by name through :func:`load_dataset`:

    >>> from prismrec.data.loaders import load_dataset
    >>> data = load_dataset("recbole_ml100k")  # doctest: +SKIP
    >>> data = load_dataset("generic", "ratings.csv", items_path="items.csv")  # doctest: +SKIP

Malformed input raises ``ValueError`` naming the file and line; rows that are skipped
or merged on purpose are reported with a :class:`DataWarning`.
"""
from __future__ import annotations

from prismrec.data.catalog import Dataset
from prismrec.data.loaders._common import DataWarning
from prismrec.data.loaders.amazon import load_amazon_meta, load_amazon_review_texts, load_amazon_reviews
from prismrec.data.loaders.atomic import load_atomic_files, load_recbole_ml100k
from prismrec.data.loaders.generic import load_generic, load_split_files
from prismrec.data.loaders.mmrec import load_mmrec, mmrec_split
from prismrec.data.loaders.movielens import load_movielens_100k
from prismrec.data.loaders.p5 import load_p5_sequences
from prismrec.data.loaders.tmdb import load_tmdb_items

LOADERS = {
    "movielens_100k": load_movielens_100k,
    "recbole_ml100k": load_recbole_ml100k,
    "atomic_files": load_atomic_files,
    "amazon_reviews": load_amazon_reviews,
    "p5_sequences": load_p5_sequences,
    "mmrec": load_mmrec,
    "generic": load_generic,
}

# loaders that read a fixed, installed resource and take no path
_NO_PATH = {"recbole_ml100k"}


def load_dataset(name: str, path=None, **options) -> Dataset:
    """Load a data set by loader name (a key of :data:`LOADERS`; ``-`` reads as ``_``) from ``path``.

    Example:
        >>> data = load_dataset("movielens_100k", "/data/ml-100k", rating_threshold=4)  # doctest: +SKIP
    """
    name = name.replace("-", "_")
    if name not in LOADERS:
        raise KeyError(f"unknown data set loader {name!r}; known loaders: {', '.join(sorted(LOADERS))}")
    if name in _NO_PATH:
        if path is not None:
            raise ValueError(f"loader {name!r} reads the copy inside an installed package and takes no path, "
                             f"got {path!r}")
        return LOADERS[name](**options)
    if path is None:
        raise ValueError(f"loader {name!r} needs a path")
    return LOADERS[name](path, **options)


__all__ = [
    "LOADERS", "load_dataset", "DataWarning", "load_movielens_100k", "load_tmdb_items", "load_recbole_ml100k",
    "load_atomic_files", "load_amazon_reviews", "load_amazon_review_texts", "load_amazon_meta",
    "load_p5_sequences", "load_mmrec", "mmrec_split", "load_generic", "load_split_files",
]
