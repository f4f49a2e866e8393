"""The network shared by the two-graph multimodal models (FREEDOM, LATTICE): ID embeddings
propagated over the user-item graph (LightGCN) plus an item-item content part.

Items never seen in training have an all-zero row in the user-item graph and only ever
appear as negatives, so their ID embedding carries no signal; it is masked to zero. For
scoring, such an item takes the graph-weighted mean of its seen content neighbours' final
embeddings (:func:`embeddings_from_neighbours`), since its own representation would be a
small content part with no collaborative part at all.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from prismrec.models.base import Recommender
from prismrec.models.content import (
    checked_features,
    item_content_graph,
    items_seen,
    warn_unscorable_cold_items,
    weighted_graph_sum,
)
from prismrec.models.graph import (
    bipartite_adjacency,
    propagate_layer_mean,
    propagated_rows,
    row_normalize,
    symmetric_normalize,
    to_torch_sparse_csr,
)
from prismrec.models.module_training import xavier_table
from prismrec.models.new_items import content_keys, neighbour_mean_embeddings, new_item_features


def prepare_content(model, train, item_features) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Checked float32 arrays of ``model.feature_names`` and the mask of items seen in training;
    warns (counted) about never-seen items without any content, and keeps the seen items'
    content keys on ``model`` for :meth:`MultimodalEmbeddingModel.add_items`.

    Example:
        >>> arrays, seen = prepare_content(model, train, {"image": posters})  # doctest: +SKIP
    """
    model_name = type(model).__name__
    arrays = checked_features(item_features, model.feature_names, train.n_items, model_name)
    seen = items_seen(train)
    warn_unscorable_cold_items(model_name, seen, arrays)
    model.content_keys_ = content_keys(arrays, model.feature_names)[seen]
    model.content_key_items_ = np.flatnonzero(seen).astype(np.int64)
    model.content_dims_ = [int(arrays[name].shape[1]) for name in model.feature_names]
    return arrays, seen


class MultimodalEmbeddingModel(Recommender):
    """Base of the multimodal embedding models: they need the arrays named in
    ``feature_names`` and score ``user_embeddings_[u] @ item_embeddings_.T``."""

    feature_names: list[str]

    def required_features_for_fit(self) -> tuple[str, ...]:
        return tuple(self.feature_names)

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64))
        return self.user_embeddings_.index_select(0, users) @ self.item_embeddings_.T

    @torch.no_grad()
    def add_items(self, item_features) -> np.ndarray:
        """Append new items; each one's embedding is the similarity-weighted mean of its ``knn_k``
        (default 10) nearest training items' embeddings by content. Returns the new indices.

        Example:
            >>> model.add_items({"image": new_posters, "text": new_plots})  # doctest: +SKIP
            array([1682, 1683])
        """
        arrays = new_item_features(self, item_features)
        keys = content_keys(arrays, self.feature_names)
        seen_embeddings = self.item_embeddings_.index_select(0, torch.from_numpy(self.content_key_items_))
        added = neighbour_mean_embeddings(keys, self.content_keys_, seen_embeddings, getattr(self, "knn_k", 10))
        start = self.n_items_
        self.item_embeddings_ = torch.cat([self.item_embeddings_, added.to(self.item_embeddings_.dtype)])
        self.n_items_ = start + len(keys)
        return np.arange(start, self.n_items_)


class ItemGraphNetwork(torch.nn.Module):
    """User/item ID embeddings (Xavier), one linear projection per modality, and the
    forward passes over the user-item graph.

    Example:
        >>> import numpy as np, torch
        >>> network = ItemGraphNetwork(3, 2, 4, np.array([True, False]), {"image": 5}, 4)
        >>> network.item_ids()[1].abs().sum().item()  # the never-seen item has no ID embedding
        0.0
    """

    def __init__(self, n_users: int, n_items: int, embedding_size: int, seen: np.ndarray,
                 feature_dims: dict[str, int], feature_embedding_size: int, *, projection_bias: bool = True) -> None:
        super().__init__()
        self.n_users = n_users
        self.user_embedding = xavier_table(n_users, embedding_size)
        self.item_embedding = xavier_table(n_items, embedding_size)
        self.register_buffer("seen", torch.from_numpy(np.asarray(seen, dtype=np.float32)).unsqueeze(1))
        self.projections = torch.nn.ModuleList(
            torch.nn.Linear(dim, feature_embedding_size, bias=projection_bias) for dim in feature_dims.values())

    def item_ids(self) -> torch.Tensor:
        """Item ID embeddings with the never-seen items' rows set to zero."""
        return self.item_embedding * self.seen

    def content_part(self, item_graph, n_layers: int) -> torch.Tensor:
        """``S^n_layers @ item_ids()`` over a fixed item-item graph (a :class:`FixedGraph`)."""
        return item_graph.propagate(self.item_ids(), n_layers)

    def ego(self) -> torch.Tensor:
        return torch.cat([self.user_embedding, self.item_ids()])

    def batch_rows(self, graph, n_layers: int, users, positives, negatives, content: torch.Tensor):
        """Propagated user rows and item rows (plus ``content``) of one batch of triplets;
        ``graph`` is a symmetric adjacency or a :class:`ScaledGraph`."""
        nodes = torch.cat([users, positives + self.n_users, negatives + self.n_users])
        rows, position = torch.unique(nodes, return_inverse=True)
        adjacency, inner, outer = _parts(graph)
        ego = self.ego() if inner is None else self.ego() * inner
        propagated = propagated_rows(adjacency, ego, rows, n_layers)
        if outer is not None:
            propagated = propagated * outer.index_select(0, rows)
        user_rows, positive_rows, negative_rows = propagated.index_select(0, position).view(3, len(users), -1)
        return user_rows, positive_rows + content[positives], negative_rows + content[negatives]

    def all_rows(self, graph, n_layers: int, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All users' and items' final embeddings (items: propagated ID part plus ``content``)."""
        adjacency, inner, outer = _parts(graph)
        ego = self.ego() if inner is None else self.ego() * inner
        propagated = propagate_layer_mean(adjacency, ego, n_layers)
        if outer is not None:
            propagated = propagated * outer
        return propagated[: self.n_users].clone(), propagated[self.n_users:] + content


class ScaledGraph:
    """``D^-1 (A + I)`` of the bipartite graph (LATTICE's user-item graph), kept as the
    symmetric ``S = D^-1/2 (A + I) D^-1/2`` with ``D^-1 (A + I) = D^-1/2 S D^1/2``, so the
    propagation reuses the symmetric custom backward: ``P^l E = D^-1/2 S^l (D^1/2 E)``.

    Example:
        >>> import scipy.sparse as sp
        >>> graph = ScaledGraph(sp.csr_matrix([[1.0]]))  # one user, one item
        >>> graph.adjacency.to_dense().round(decimals=4).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """

    def __init__(self, interactions: sp.spmatrix) -> None:
        adjacency = bipartite_adjacency(interactions) + sp.eye(sum(interactions.shape), dtype=np.float32, format="csr")
        degree = np.asarray(adjacency.sum(axis=1), dtype=np.float32).ravel()
        self.adjacency = to_torch_sparse_csr(symmetric_normalize(adjacency))
        self.inner = torch.from_numpy(np.sqrt(degree)).unsqueeze(1)
        self.outer = 1.0 / self.inner


def _parts(graph):
    if isinstance(graph, ScaledGraph):
        return graph.adjacency, graph.inner, graph.outer
    return graph, None, None

def content_neighbour_graph(arrays: dict[str, np.ndarray], k: int, cache_dir=None) -> sp.csr_matrix:
    """The mean over modalities of each one's cosine kNN graph (raw similarities): who an
    item's content neighbours are, for models without an item-item graph of their own."""
    graphs = [item_content_graph(array, k=k, binary=False, normalization="none", cache_dir=cache_dir)
              for array in arrays.values()]
    return weighted_graph_sum(graphs, np.full(len(graphs), 1.0 / len(graphs)))


def neighbour_fill(arrays: dict[str, np.ndarray], seen: np.ndarray, k: int, cache_dir=None):
    """A function ``item_embeddings -> item_embeddings`` that gives never-seen items the mean of
    their seen content neighbours' rows (identity when training saw every item).

    Example:
        >>> fill = neighbour_fill({"image": posters}, seen, k=10)  # doctest: +SKIP
        >>> model.item_embeddings_ = fill(items)  # doctest: +SKIP
    """
    if np.all(seen):
        return lambda item_embeddings: item_embeddings
    graph = content_neighbour_graph(arrays, k, cache_dir)
    return lambda item_embeddings: embeddings_from_neighbours(item_embeddings, graph, seen)


def embeddings_from_neighbours(item_embeddings: torch.Tensor, item_graph: sp.spmatrix,
                               seen: np.ndarray) -> torch.Tensor:
    """``item_embeddings`` where each never-seen item's row is replaced by the mean of its
    seen neighbours' rows in ``item_graph``, weighted by the graph's values.

    Never-seen items without seen neighbours keep their row.

    Example:
        >>> import numpy as np, scipy.sparse as sp, torch
        >>> graph = sp.csr_matrix(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 3.0, 1.0]]))
        >>> embeddings_from_neighbours(torch.eye(3), graph, np.array([True, True, False])).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.25, 0.75, 0.0]]
    """
    seen = np.asarray(seen, dtype=bool)
    cold = np.flatnonzero(~seen)
    if len(cold) == 0:
        return item_embeddings
    to_seen = sp.csr_matrix(item_graph, dtype=np.float32)[cold] @ sp.diags(seen.astype(np.float32))
    weights = row_normalize(to_seen)
    has_neighbours = np.diff(weights.indptr) > 0
    result = item_embeddings.clone()
    rows = torch.from_numpy(cold[has_neighbours])
    result[rows] = torch.from_numpy(weights[has_neighbours] @ item_embeddings.detach().numpy())
    return result
