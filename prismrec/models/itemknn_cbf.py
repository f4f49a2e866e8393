"""ItemKNN-CBF: content-based item kNN (the baseline of Dacrema et al. 2019, as in MMRec).

Each item keeps its ``knn_k`` most similar items by content (cosine with a ``shrink``
term, on the named feature arrays, each L2-normalised and then concatenated). A user's
score for item ``j`` sums the similarities ``sim(i, j)`` over the items ``i`` in the
user's history for which ``j`` is a neighbour. Nothing is trained, so items never seen in
training are scored from their content like any other.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from prismrec.models.base import Recommender
from prismrec.models.content import checked_features, item_content_graph, items_seen, warn_unscorable_cold_items
from prismrec.models.new_items import new_item_features
from prismrec.models.vbpr import NORMALIZATIONS, fuse_features


def feature_name_list(feature_names, model_name: str) -> list[str]:
    """``feature_names`` as a non-empty list (a single string is one name)."""
    if isinstance(feature_names, str):
        feature_names = (feature_names,)
    if not feature_names:
        raise ValueError(f"{model_name} needs at least one item feature name, e.g. feature_names=('image', 'text')")
    return list(feature_names)


class ItemKNNCBF(Recommender):
    """Content kNN recommender; ``fit(train, item_features={"image": ..., "text": ...})``.

    Published state: the item-item graph (``similarity_indptr_``, ``similarity_indices_``,
    ``similarity_values_``, row ``i`` = neighbours of ``i``) and the training histories
    (``history_indptr_``, ``history_indices_``), so a saved model scores without features.

    Example:
        >>> model = ItemKNNCBF(feature_names=("text",), knn_k=10)
        >>> model.fit(train, item_features={"text": vectors})  # doctest: +SKIP
        >>> model.score([0]).shape  # doctest: +SKIP
        torch.Size([1, 1682])
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), knn_k: int = 10, shrink: float = 10.0,
                 feature_normalization: str = "l2", graph_cache_dir: str | None = None) -> None:
        if feature_normalization not in NORMALIZATIONS:
            raise ValueError(f"feature_normalization must be one of {NORMALIZATIONS}, got {feature_normalization!r}")
        if knn_k < 1:
            raise ValueError(f"knn_k must be at least 1, got {knn_k}")
        if shrink < 0:
            raise ValueError(f"shrink must be non-negative, got {shrink}")
        self.feature_names = feature_name_list(feature_names, "ItemKNNCBF")
        self.knn_k, self.shrink, self.feature_normalization = knn_k, shrink, feature_normalization
        self.graph_cache_dir = graph_cache_dir

    def required_features_for_fit(self) -> tuple[str, ...]:
        return tuple(self.feature_names)

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays = checked_features(item_features, self.feature_names, train.n_items, "ItemKNNCBF")
        warn_unscorable_cold_items("ItemKNNCBF", items_seen(train), arrays)
        raw = fuse_features(arrays, self.feature_names, "none")
        self.feature_center_, self.feature_scale_ = raw.mean(0), raw.std(0, correction=0).clamp(min=1e-12)
        fused = fuse_features(arrays, self.feature_names, self.feature_normalization).numpy()
        graph = item_content_graph(fused, k=self.knn_k, binary=False, normalization="none", shrink=self.shrink,
                                   cache_dir=self.graph_cache_dir)
        # for add_items: the item vectors and each row's k-th similarity (a new item must beat it)
        self.content_vectors_ = fused
        self.content_dims_ = [int(arrays[name].shape[1]) for name in self.feature_names]
        lowest = np.minimum.reduceat(graph.data, graph.indptr[:-1]) if graph.nnz else np.zeros(0, np.float32)
        self.similarity_threshold_ = np.full(train.n_items, np.inf, dtype=np.float32)
        self.similarity_threshold_[np.diff(graph.indptr) > 0] = lowest[np.diff(graph.indptr) > 0]
        history = sp.csr_matrix(train.matrix, dtype=np.float32)
        history.sort_indices()
        self.similarity_indptr_ = graph.indptr.astype(np.int64)
        self.similarity_indices_ = graph.indices.astype(np.int64)
        self.similarity_values_ = graph.data.astype(np.float32)
        self.history_indptr_, self.history_indices_ = history.indptr.astype(np.int64), history.indices.astype(np.int64)

    def _matrices(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        cached = getattr(self, "_scoring_matrices", None)
        if cached is None or cached[0] is not self.similarity_values_:
            n_items = self.n_items_
            similarity = sp.csr_matrix((self.similarity_values_, self.similarity_indices_, self.similarity_indptr_),
                                       shape=(n_items, n_items))
            n_users = len(self.history_indptr_) - 1
            history = sp.csr_matrix((np.ones(len(self.history_indices_), dtype=np.float32), self.history_indices_,
                                     self.history_indptr_), shape=(n_users, n_items))
            cached = (self.similarity_values_, similarity, history)
            self._scoring_matrices = cached
        return cached[1], cached[2]

    def add_items(self, item_features) -> np.ndarray:
        """Append new items: item ``j`` joins row ``i`` of the graph when its similarity to ``i``
        reaches row ``i``'s ``k``-th (so users whose history holds such items score it). Returns
        the new indices.

        Example:
            >>> model.add_items({"image": new_posters, "text": new_plots})  # doctest: +SKIP
            array([1682, 1683])
        """
        arrays = new_item_features(self, item_features)
        if self.feature_normalization == "standard":
            vectors = ((fuse_features(arrays, self.feature_names, "none") - self.feature_center_)
                       / self.feature_scale_).numpy()
        else:
            vectors = fuse_features(arrays, self.feature_names, self.feature_normalization).numpy()
        old = self.content_vectors_
        norms_old, norms_new = np.linalg.norm(old, axis=1), np.linalg.norm(vectors, axis=1)
        scale = norms_old[:, None] * norms_new[None, :]
        similarity = np.divide(old @ vectors.T, scale + self.shrink, out=np.zeros_like(scale), where=scale > 0)
        rows, columns = np.nonzero((similarity >= self.similarity_threshold_[:, None]) & (scale > 0))
        start, count = self.n_items_, len(vectors)
        graph = sp.csr_matrix((self.similarity_values_, self.similarity_indices_, self.similarity_indptr_),
                              shape=(start, start)).tocoo()
        graph = sp.csr_matrix((np.concatenate([graph.data, similarity[rows, columns]]),
                               (np.concatenate([graph.row, rows]), np.concatenate([graph.col, columns + start]))),
                              shape=(start + count, start + count), dtype=np.float32)
        graph.sort_indices()
        self.similarity_indptr_, self.similarity_indices_ = (graph.indptr.astype(np.int64),
                                                             graph.indices.astype(np.int64))
        self.similarity_values_ = graph.data.astype(np.float32)
        self.content_vectors_ = np.concatenate([old, vectors.astype(np.float32)])
        self.similarity_threshold_ = np.concatenate([self.similarity_threshold_, np.full(count, np.inf, np.float32)])
        self.n_items_ = start + count
        return np.arange(start, start + count)

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        similarity, history = self._matrices()
        users = np.asarray(user_ids, dtype=np.int64)
        scores = (history[users] @ similarity).toarray().astype(np.float32)
        return torch.from_numpy(scores)
