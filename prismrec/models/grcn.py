"""GRCN (Wei et al. 2020, "Graph-Refined Convolutional Network for Multimedia
Recommendation with Implicit Feedback").

Per modality, user preferences are refined by routing over their items' projected
content (attention ``softmax_i(p_u · c_i)`` over each user's items), then one attention
layer over the bipartite graph gives the modality's representation and edge weights.
Each edge keeps the largest of its modalities' weights times the source node's learned
per-modality confidence (pruned at 0 by a ReLU): the *refined* graph, over which the ID
embeddings are propagated. ``representation = [ID part, modality parts...]`` and
``score = user · item``.

MMRec's port routes messages from users to items only, so its user preferences are
never refined; here users aggregate their items as in the paper. Never-seen items are
scored from their content neighbours.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prismrec.models.graph import propagate_entries
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import bpr_loss, fit_module, xavier_normal_table
from prismrec.models.multimodal_graph import MultimodalEmbeddingModel, neighbour_fill, prepare_content


def edge_softmax(scores: torch.Tensor, targets: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Softmax of edge ``scores`` over the edges that share a target node.

    Example:
        >>> import torch
        >>> edge_softmax(torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0, 0, 1]), 2).tolist()
        [0.5, 0.5, 1.0]
    """
    largest = torch.full((n_nodes,), -torch.inf).scatter_reduce(0, targets, scores.detach(), "amax")
    weights = torch.exp(scores - largest[targets])
    return weights / torch.zeros(n_nodes).index_add(0, targets, weights)[targets]


def attend(x: torch.Tensor, sources, targets, n_nodes: int):
    """One attention layer: ``Σ_j softmax_j(x_t · x_j) x_j`` per target ``t``; returns it and the weights."""
    alpha = edge_softmax((x[targets] * x[sources]).sum(1), targets, n_nodes)
    return propagate_entries(targets, sources, alpha, x), alpha


class GRCN(MultimodalEmbeddingModel):
    """GRCN on any named modalities (MMRec's ``GRCN.yaml``; ``reg_weight`` and
    ``learning_rate`` picked from its grids).

    Example:
        >>> model = GRCN(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 latent_size: int = 64, n_routing: int = 3, reg_weight: float = 1e-3, learning_rate: float = 1e-3,
                 batch_size: int = 2048, epochs: int = 500, early_stopping_metric: str = "ndcg@20",
                 patience: int = 20, eval_every: int = 1, seed: int = 0, knn_k: int = 10,
                 graph_cache_dir: str | None = None) -> None:
        if n_routing < 0:
            raise ValueError(f"n_routing must be non-negative, got {n_routing}")
        self.feature_names = feature_name_list(feature_names, "GRCN")
        self.embedding_size, self.latent_size, self.n_routing = embedding_size, latent_size, n_routing
        self.reg_weight, self.learning_rate = reg_weight, learning_rate
        self.batch_size, self.epochs = batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.knn_k, self.graph_cache_dir = seed, knn_k, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        n_users, n_items = train.n_users, train.n_items
        n_nodes, n_modalities = n_users + n_items, len(self.feature_names)
        matrix = train.matrix.tocoo()
        users, items = (torch.from_numpy(a.astype(np.int64)) for a in (matrix.row, matrix.col + n_users))
        sources, targets = torch.cat([users, items]), torch.cat([items, users])  # both directions
        network = torch.nn.Module()
        network.ids = xavier_normal_table(n_nodes, self.embedding_size)
        network.preferences = torch.nn.ParameterList(xavier_normal_table(n_users, self.latent_size)
                                                     for _ in range(n_modalities))
        network.projections = torch.nn.ModuleList(torch.nn.Linear(arrays[name].shape[1], self.latent_size)
                                                  for name in self.feature_names)
        for projection in network.projections:
            torch.nn.init.xavier_normal_(projection.weight)
        network.confidence = xavier_normal_table(n_nodes, n_modalities)
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]

        def modality(preference, projection, feature):
            content = F.normalize(F.leaky_relu(projection(feature)), dim=1)
            preference = F.normalize(preference, dim=1)
            x = torch.cat([preference, content])
            for _ in range(self.n_routing):  # users gather their items' content
                gathered, _ = attend(x, items, users, n_nodes)
                x = torch.cat([F.normalize(x[:n_users] + gathered[:n_users], dim=1), content])
            refined, alpha = attend(x, sources, targets, n_nodes)
            return x + refined, alpha

        def forward() -> torch.Tensor:
            parts = [modality(*args) for args in zip(network.preferences, network.projections, features)]
            alphas = torch.stack([alpha for _, alpha in parts], dim=1)
            weights = torch.relu((alphas * network.confidence[sources]).max(dim=1).values).unsqueeze(1)
            x = F.normalize(network.ids, dim=1)
            layer_1 = propagate_entries(targets, sources, weights, x)
            layer_2 = propagate_entries(targets, sources, weights, layer_1)
            return torch.cat([x + layer_1 + layer_2] + [rep for rep, _ in parts], dim=1)

        def batch_loss(batch_users, positives, negatives) -> torch.Tensor:
            nodes = forward()
            positives, negatives = positives + n_users, negatives + n_users
            penalty = (network.ids[batch_users].pow(2) + network.ids[positives].pow(2)).mean() + sum(
                preference[batch_users].pow(2).mean() for preference in network.preferences)
            return bpr_loss(nodes[batch_users], nodes[positives], nodes[negatives]) + self.reg_weight * penalty

        fill_unseen = neighbour_fill(arrays, seen, self.knn_k, self.graph_cache_dir)

        def publish() -> None:
            nodes = forward()
            self.user_embeddings_, self.item_embeddings_ = nodes[:n_users].clone(), fill_unseen(nodes[n_users:].clone())

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress)
