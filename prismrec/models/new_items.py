"""Scoring items added after training (``Recommender.add_items``) from their content.

A content model keeps the *content keys* of the items it saw in training: each modality's
features L2-normalised and concatenated, so that the dot product of two keys is the sum
of the per-modality cosines. A new item's embedding is the similarity-weighted mean of the
embeddings of its ``k`` nearest seen items, the same rule the models apply at fit time to
items that never occurred in training.
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.models.base import ColdStartError
from prismrec.models.content import checked_features


def content_keys(arrays: dict[str, np.ndarray], names) -> np.ndarray:
    """Per-modality L2-normalised features, concatenated (all-zero rows stay zero).

    Example:
        >>> import numpy as np
        >>> content_keys({"image": np.array([[3.0, 4.0]]), "text": np.array([[2.0]])}, ["image", "text"]).tolist()
        [[0.6000000238418579, 0.800000011920929, 1.0]]
    """
    blocks = []
    for name in names:
        array = np.asarray(arrays[name], dtype=np.float32)
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        blocks.append(array / np.where(norms > 0, norms, 1.0))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def new_item_features(model, item_features) -> dict[str, np.ndarray]:
    """The checked arrays for ``add_items``: every name the model was fitted on, equal row counts,
    the fitted column counts, finite values."""
    model._check_fitted()
    names = list(model.feature_names)
    missing = [name for name in names if name not in item_features]
    if missing:
        raise ValueError(f"{type(model).__name__}.add_items needs the feature arrays {missing}; "
                         f"got {sorted(item_features)}")
    n_new = len(np.asarray(item_features[names[0]]))
    arrays = checked_features(item_features, names, n_new, f"{type(model).__name__}.add_items")
    dims = getattr(model, "content_dims_", None)
    if dims is None:
        raise ColdStartError(f"this {type(model).__name__} was saved without its content keys (an older PrismRec); "
                             "refit it to score new items from their features")
    for name, dim in zip(names, dims):
        if arrays[name].shape[1] != dim:
            raise ValueError(f"{type(model).__name__}.add_items: feature {name!r} has {arrays[name].shape[1]} "
                             f"columns, but the model was fitted on {dim}")
    return arrays


def neighbour_mean_embeddings(query_keys: np.ndarray, keys: np.ndarray, key_embeddings: torch.Tensor,
                              k: int) -> torch.Tensor:
    """For each query row, the mean of ``key_embeddings`` over its ``k`` most similar keys,
    weighted by the (non-negative) similarities; rows without a positive similarity get zeros.

    Example:
        >>> import numpy as np, torch
        >>> keys = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
        >>> neighbour_mean_embeddings(np.array([[0.6, 0.8]], np.float32), keys, torch.eye(2), k=2).round(decimals=4)
        tensor([[0.4286, 0.5714]])
    """
    k = max(1, min(k, len(keys)))
    similarity = query_keys @ keys.T
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k] if k < len(keys) else np.tile(np.arange(len(keys)),
                                                                                           (len(query_keys), 1))
    weights = np.clip(np.take_along_axis(similarity, top, axis=1), 0.0, None)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    gathered = key_embeddings[torch.from_numpy(top)]  # [n_query, k, d]
    return (torch.from_numpy(weights.astype(np.float32)).unsqueeze(2) * gathered).sum(1)
