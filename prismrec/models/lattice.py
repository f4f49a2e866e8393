"""LATTICE (Zhang et al. 2021, "Mining Latent Structures for Multimedia Recommendation"),
with sparse kNN graphs: memory O(n_items * k) instead of the paper's dense N x N matrices.

Each modality has a frozen kNN graph of its raw features and a *learned* kNN graph of its
projected features, rebuilt at the start of every epoch; the learned graph's edge values
(cosine similarities) carry gradients to the projections and to the softmax modality
weights on that first batch, and are held fixed for the rest of the epoch, as in the
paper's code. ``item graph = (1 - λ) norm(Σ_m w_m learned_m) + λ Σ_m w_m frozen_m``; an
item is ``LightGCN_i + normalize(graph^L E)_i`` over the row-normalised user-item graph
with self-loops. Never-seen items are scored from their content neighbours.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from prismrec.models.content import item_content_graph
from prismrec.models.graph import propagate_entries
from prismrec.models.item_graph import knn_graph
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import FixedGraph, bpr_loss, fit_module
from prismrec.models.multimodal_graph import (
    ItemGraphNetwork,
    MultimodalEmbeddingModel,
    ScaledGraph,
    embeddings_from_neighbours,
    prepare_content,
)


def learned_knn_entries(projected: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """COO entries ``(rows, columns, cosine values)`` of the kNN graph of ``projected``; the
    neighbours are chosen without gradient (in blocks), the values are differentiable.

    Example:
        >>> import torch
        >>> rows, columns, values = learned_knn_entries(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 1)
        >>> rows.tolist(), columns.tolist(), [round(v, 4) for v in values.tolist()]
        ([0, 1], [0, 1], [1.0, 1.0])
    """
    graph = knn_graph(projected.detach().numpy(), k)
    rows = torch.from_numpy(np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr)))
    columns = torch.from_numpy(graph.indices.astype(np.int64))
    unit = F.normalize(projected, dim=1)
    return rows, columns, (unit[rows] * unit[columns]).sum(1)


def symmetric_normalized_values(rows, columns, values, n_items: int) -> torch.Tensor:
    """``d_r^-1/2 v d_c^-1/2`` with the row sums ``d`` (differentiable); rows summing to <= 0 get 0."""
    degree = torch.zeros(n_items, dtype=values.dtype).index_add(0, rows, values)
    inverse_sqrt = torch.where(degree > 0, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree))
    return inverse_sqrt[rows] * values * inverse_sqrt[columns]


def lattice_item_graph(projected, frozen, weights, k: int, lambda_coeff: float):
    """COO entries of ``(1 - λ) norm(Σ_m w_m kNN(projected_m)) + λ Σ_m w_m frozen_m``.

    ``projected``: per-modality projected features ``[n_items, d_m]`` (differentiable);
    ``frozen``: per-modality ``(rows, columns, values)`` of the normalised raw-feature graphs;
    ``weights``: modality weights (a softmax). Duplicate entries are to be summed.
    """
    n_items = projected[0].shape[0]
    learned = [learned_knn_entries(features, k) for features in projected]
    rows, columns = (torch.cat([entry[part] for entry in learned + list(frozen)]) for part in (0, 1))
    n_learned = sum(len(entry[0]) for entry in learned)
    learned_values = torch.cat([w * entry[2] for w, entry in zip(weights, learned)])
    learned_values = symmetric_normalized_values(rows[:n_learned], columns[:n_learned], learned_values, n_items)
    frozen_values = torch.cat([w * entry[2] for w, entry in zip(weights, frozen)])
    return rows, columns, torch.cat([(1 - lambda_coeff) * learned_values, lambda_coeff * frozen_values])


class LATTICE(MultimodalEmbeddingModel):
    """LATTICE on any named modalities (MMRec's ``LATTICE.yaml`` defaults; the learning rate
    and ``reg_weight`` come from the paper's grids).

    Example:
        >>> model = LATTICE(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 feature_embedding_size: int = 64, knn_k: int = 10, lambda_coeff: float = 0.9, n_layers: int = 1,
                 n_ui_layers: int = 2, reg_weight: float = 1e-4, learning_rate: float = 1e-3,
                 batch_size: int = 2048, epochs: int = 500, early_stopping_metric: str = "ndcg@20",
                 patience: int = 20, eval_every: int = 1, seed: int = 0, graph_cache_dir: str | None = None) -> None:
        if not 0.0 <= lambda_coeff <= 1.0:
            raise ValueError(f"lambda_coeff (weight of the frozen graph) must be in [0, 1], got {lambda_coeff}")
        self.feature_names = feature_name_list(feature_names, "LATTICE")
        self.embedding_size, self.feature_embedding_size = embedding_size, feature_embedding_size
        self.knn_k, self.lambda_coeff, self.n_layers, self.n_ui_layers = knn_k, lambda_coeff, n_layers, n_ui_layers
        self.reg_weight, self.learning_rate = reg_weight, learning_rate
        self.batch_size, self.epochs = batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.graph_cache_dir = seed, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        frozen = [sp.coo_matrix(item_content_graph(arrays[name], k=self.knn_k, binary=False, normalization="symmetric",
                                                   cache_dir=self.graph_cache_dir)) for name in self.feature_names]
        frozen = [(torch.from_numpy(g.row.astype(np.int64)), torch.from_numpy(g.col.astype(np.int64)),
                   torch.from_numpy(g.data)) for g in frozen]
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]
        has_content = [(f.abs().sum(1, keepdim=True) > 0).float() for f in features]
        user_item_graph = ScaledGraph(train.matrix)
        network = ItemGraphNetwork(train.n_users, train.n_items, self.embedding_size, seen,
                                   {name: arrays[name].shape[1] for name in self.feature_names},
                                   self.feature_embedding_size)
        network.modality_logits = torch.nn.Parameter(torch.zeros(len(features)))
        n_items, epoch_graph = train.n_items, {}  # the epoch's item graph, fixed after its first batch

        def item_graph_entries():
            projected = [projection(feature) * mask
                         for projection, feature, mask in zip(network.projections, features, has_content)]
            return lattice_item_graph(projected, frozen, torch.softmax(network.modality_logits, 0), self.knn_k,
                                      self.lambda_coeff)

        def content_part() -> torch.Tensor:
            if "graph" not in epoch_graph:  # first batch of the epoch: rebuild, with gradients
                rows, columns, values = item_graph_entries()
                epoch_graph["graph"] = _fixed(rows, columns, values.detach(), n_items)
                content = network.item_ids()
                for _ in range(self.n_layers):
                    content = propagate_entries(rows, columns, values, content)
            else:
                content = epoch_graph["graph"].propagate(network.item_ids(), self.n_layers)
            return F.normalize(content, dim=1)

        def batch_loss(users, positives, negatives) -> torch.Tensor:
            rows = network.batch_rows(user_item_graph, self.n_ui_layers, users, positives, negatives, content_part())
            penalty = sum(part.pow(2).sum() for part in rows) / (2 * len(users))
            return bpr_loss(*rows) + self.reg_weight * penalty

        def publish() -> None:
            epoch_graph.pop("graph", None)
            content = content_part()
            self.user_embeddings_, items = network.all_rows(user_item_graph, self.n_ui_layers, content)
            self.item_embeddings_ = embeddings_from_neighbours(items, epoch_graph.pop("graph").matrix, seen)
            self.modality_weights_ = torch.softmax(network.modality_logits, 0).detach().clone()

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress,
                   before_epoch=lambda epoch: epoch_graph.pop("graph", None))


def _fixed(rows, columns, values, n_items: int) -> FixedGraph:
    """The item graph's entries (duplicates summed) as a constant :class:`FixedGraph`."""
    matrix = sp.csr_matrix((values.numpy(), (rows.numpy(), columns.numpy())), shape=(n_items, n_items))
    return FixedGraph(matrix)
