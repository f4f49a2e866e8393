"""MGCN (Yu et al. 2023, "Multi-View Graph Convolutional Network for Multimedia Recommendation").

Views: the user-item graph (LightGCN over ID embeddings) and, per modality, an item-item
kNN graph over *purified* item embeddings (``E_item ⊙ σ(W_m projection_m(f_m))``, the
behaviour-guided purifier) whose users aggregate their items. A behaviour-aware fuser
splits the modality views into a common part (attention over modalities) and specific
parts gated by the user-item view; ``item = ID view + (Σ_m specific_m + common) / (M + 1)``.
An InfoNCE term aligns the fused side view with the ID view. Generalised from image+text
to any number of modalities; never-seen items are scored from their content neighbours.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prismrec.models.content import item_content_graph, weighted_graph_sum
from prismrec.models.graph import normalized_bipartite_adjacency, propagate_layer_mean, to_torch_sparse_csr
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import FixedGraph, bpr_loss, fit_module
from prismrec.models.multimodal_graph import (
    ItemGraphNetwork,
    MultimodalEmbeddingModel,
    embeddings_from_neighbours,
    prepare_content,
)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean InfoNCE of matching rows against all rows of the other view (cosine / temperature).

    Example:
        >>> import torch
        >>> round(info_nce(torch.eye(2), torch.eye(2), 1.0).item(), 4)  # -log(e / (e + 1))
        0.3133
    """
    view1, view2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    logits = view1 @ view2.T / temperature
    return F.cross_entropy(logits, torch.arange(len(view1)))


def _gate(size: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(size, size), torch.nn.Sigmoid())


class MGCN(MultimodalEmbeddingModel):
    """MGCN on any named modalities (MMRec's ``MGCN.yaml``; ``cl_weight`` is the first value of
    the paper's grid for ``cl_loss``).

    Example:
        >>> model = MGCN(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 knn_k: int = 10, n_layers: int = 1, n_ui_layers: int = 2, reg_weight: float = 1e-4,
                 cl_weight: float = 1e-3, temperature: float = 0.2, learning_rate: float = 1e-3,
                 batch_size: int = 2048, epochs: int = 500, early_stopping_metric: str = "ndcg@20",
                 patience: int = 20, eval_every: int = 1, seed: int = 0, graph_cache_dir: str | None = None) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.feature_names = feature_name_list(feature_names, "MGCN")
        self.embedding_size, self.knn_k, self.n_layers, self.n_ui_layers = embedding_size, knn_k, n_layers, n_ui_layers
        self.reg_weight, self.cl_weight, self.temperature = reg_weight, cl_weight, temperature
        self.learning_rate, self.batch_size, self.epochs = learning_rate, batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.graph_cache_dir = seed, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        graphs = [item_content_graph(arrays[name], k=self.knn_k, binary=False, normalization="symmetric",
                                     cache_dir=self.graph_cache_dir) for name in self.feature_names]
        item_graphs = [FixedGraph(graph) for graph in graphs]
        normalized = normalized_bipartite_adjacency(train.matrix)
        user_item = FixedGraph(normalized[: train.n_users, train.n_users:])  # users aggregate their items
        adjacency = to_torch_sparse_csr(normalized)
        size, n_modalities = self.embedding_size, len(graphs)
        network = ItemGraphNetwork(train.n_users, train.n_items, size, seen,
                                   {name: arrays[name].shape[1] for name in self.feature_names}, size)
        network.purifiers = torch.nn.ModuleList(_gate(size) for _ in range(n_modalities))
        network.preferences = torch.nn.ModuleList(_gate(size) for _ in range(n_modalities))
        network.query = torch.nn.Sequential(torch.nn.Linear(size, size), torch.nn.Tanh(),
                                            torch.nn.Linear(size, 1, bias=False))
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]
        n_users = train.n_users

        def forward():
            id_view = propagate_layer_mean(adjacency, network.ego(), self.n_ui_layers)
            views = []
            for projection, purifier, graph, feature in zip(network.projections, network.purifiers, item_graphs,
                                                            features):
                items = graph.propagate(network.item_ids() * purifier(projection(feature)), self.n_layers)
                views.append(torch.cat([user_item.matmul(items), items]))
            attention = torch.softmax(torch.cat([network.query(view) for view in views], dim=1), dim=1)
            common = sum(attention[:, [m]] * view for m, view in enumerate(views))
            specific = sum(preference(id_view) * (view - common)
                           for preference, view in zip(network.preferences, views))
            side = (specific + common) / (n_modalities + 1)
            return id_view + side, side, id_view

        def batch_loss(users, positives, negatives) -> torch.Tensor:
            final, side, id_view = forward()
            rows = final[users], final[positives + n_users], final[negatives + n_users]
            penalty = sum(part.pow(2).sum() for part in rows) / (2 * len(users))
            contrast = (info_nce(side[positives + n_users], id_view[positives + n_users], self.temperature)
                        + info_nce(side[users], id_view[users], self.temperature))
            return bpr_loss(*rows) + self.reg_weight * penalty + self.cl_weight * contrast

        def publish() -> None:
            final = forward()[0]
            self.user_embeddings_ = final[:n_users].clone()
            self.item_embeddings_ = embeddings_from_neighbours(final[n_users:], weighted_graph_sum(
                graphs, np.full(n_modalities, 1.0 / n_modalities)), seen)

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress)
