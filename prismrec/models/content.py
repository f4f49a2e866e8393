"""Content inputs shared by the multimodal models: checked feature arrays, modality
weights, per-modality item graphs cached on disk, and which items training has seen.

The graph cache is keyed by a hash of the feature values *and* the graph parameters, so a
changed feature array never reuses a stale graph (MMRec's FREEDOM names its cache file by
``knn_k`` and the image weight only).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from prismrec.io import atomic_path
from prismrec.models.graph import row_normalize, symmetric_normalize
from prismrec.models.item_graph import knn_graph

GRAPH_NORMALIZATIONS = ("symmetric", "row", "none")


class ContentNotice(UserWarning):
    """Content is missing where a model would use it (counted, with the first item indices)."""


def checked_features(item_features: Mapping[str, np.ndarray], names: Sequence[str], n_items: int,
                     model_name: str) -> dict[str, np.ndarray]:
    """The named arrays as float32 ``[n_items, d]``; wrong shapes and NaN/inf raise an error
    naming the feature, the number of bad rows and the first one.

    Example:
        >>> import numpy as np
        >>> checked_features({"image": np.ones((3, 2))}, ["image"], 3, "FREEDOM")["image"].dtype
        dtype('float32')
    """
    arrays = {}
    for name in names:
        if name not in item_features:
            raise ValueError(f"{model_name} needs the item feature array {name!r}, but got {sorted(item_features)}")
        array = np.asarray(item_features[name], dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != n_items:
            raise ValueError(f"{model_name}: item feature {name!r} must be [n_items={n_items}, d], "
                             f"got shape {tuple(array.shape)}")
        raise_on_non_finite(array, f"{model_name}: item feature {name!r}")
        arrays[name] = array
    return arrays


def raise_on_non_finite(array: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` naming ``what``, the number of rows with NaN/inf and the first one.

    Example:
        >>> import numpy as np
        >>> raise_on_non_finite(np.array([[1.0], [np.nan]]), "VBPR: item feature 'image'")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: VBPR: item feature 'image' has NaN or infinite values in 1 of 2 rows (first: row 1); ...
    """
    bad_rows = np.flatnonzero(~np.isfinite(np.asarray(array)).reshape(len(array), -1).all(axis=1))
    if len(bad_rows):
        raise ValueError(f"{what} has NaN or infinite values in {len(bad_rows)} of {len(array)} rows "
                         f"(first: row {bad_rows[0]}); fill them (zeros mean 'no content') or drop those items")


def modality_weights(names: Sequence[str], weights: Mapping[str, float] | None) -> np.ndarray:
    """Weights of ``names`` summing to 1: listed names take their value, unlisted ones
    ``1 / len(names)``, then all are normalised.

    Example:
        >>> modality_weights(["image", "text"], {"image": 0.1, "text": 0.9}).tolist()
        [0.1, 0.9]
        >>> modality_weights(["aligned"], {"image": 0.1, "text": 0.9}).tolist()
        [1.0]
    """
    weights = dict(weights or {})
    raw = np.array([float(weights.get(name, 1.0 / len(names))) for name in names], dtype=np.float64)
    if (raw < 0).any() or raw.sum() <= 0:
        raise ValueError(f"modality weights must be non-negative with a positive sum, got {dict(zip(names, raw))}")
    return raw / raw.sum()


def graph_cache_key(features: np.ndarray, params: Mapping) -> str:
    """SHA-256 (hex, 20 characters) of the feature values, shape, dtype and graph parameters.

    Example:
        >>> import numpy as np
        >>> graph_cache_key(np.ones((2, 2)), {"k": 1}) != graph_cache_key(np.ones((2, 2)), {"k": 2})
        True
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    digest = hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode())
    digest.update(json.dumps([list(features.shape), str(features.dtype)]).encode())
    digest.update(memoryview(features).cast("B"))
    return digest.hexdigest()[:20]


def normalize_graph(graph: sp.spmatrix, normalization: str) -> sp.csr_matrix:
    if normalization == "symmetric":
        return symmetric_normalize(graph)
    if normalization == "row":
        return row_normalize(graph)
    if normalization == "none":
        return sp.csr_matrix(graph, dtype=np.float32)
    raise ValueError(f"graph normalization must be one of {GRAPH_NORMALIZATIONS}, got {normalization!r}")


def item_content_graph(features: np.ndarray, *, k: int, binary: bool, normalization: str = "symmetric",
                       shrink: float = 0.0, cache_dir: str | Path | None = None) -> sp.csr_matrix:
    """Normalised cosine kNN graph of one modality, read from ``cache_dir`` when the same
    features and parameters were seen before (then written there atomically).

    Example:
        >>> import numpy as np
        >>> item_content_graph(np.eye(3), k=1, binary=True).toarray().tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    params = {"kind": "knn", "k": int(k), "binary": bool(binary), "normalization": normalization,
              "shrink": float(shrink), "version": 1}
    if normalization not in GRAPH_NORMALIZATIONS:
        raise ValueError(f"graph normalization must be one of {GRAPH_NORMALIZATIONS}, got {normalization!r}")
    path = Path(cache_dir) / f"item-graph-{graph_cache_key(features, params)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        return sp.load_npz(path).tocsr().astype(np.float32)
    graph = normalize_graph(knn_graph(features, k, shrink=shrink, binary=binary), normalization)
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            sp.save_npz(handle, graph)
    return graph


def weighted_graph_sum(graphs: Sequence[sp.spmatrix], weights: Sequence[float]) -> sp.csr_matrix:
    """``Σ_m w_m A_m`` as one float32 CSR matrix."""
    total = sum(float(w) * sp.csr_matrix(g, dtype=np.float32) for g, w in zip(graphs, weights))
    total = sp.csr_matrix(total, dtype=np.float32)
    total.sort_indices()
    return total


def items_seen(train) -> np.ndarray:
    """Boolean mask of the items with at least one training interaction."""
    return np.asarray(train.item_popularity()) > 0


def warn_unscorable_cold_items(model_name: str, seen: np.ndarray, features: Mapping[str, np.ndarray]) -> int:
    """Warn (counted) about items never seen in training that have no content in any modality:
    no model can score them from content. Returns their number.
    """
    has_content = np.zeros(len(seen), dtype=bool)
    for array in features.values():
        has_content |= np.abs(array).sum(axis=1) > 0
    blind = np.flatnonzero(~seen & ~has_content)
    if len(blind):
        warnings.warn(f"{model_name}: {len(blind)} items never seen in training have no content in "
                      f"{sorted(features)} (all-zero rows; first: item {blind[0]}); they cannot be scored from "
                      f"content and get the lowest content score", ContentNotice, stacklevel=3)
    return len(blind)
