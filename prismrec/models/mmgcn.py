"""MMGCN (Wei et al. 2019, "Multi-modal Graph Convolution Network for Personalized
Recommendation of Micro-video").

One graph network per modality over the user-item graph: users start from a learned
preference vector, items from their projected features; each layer combines the mean of
the neighbours' transformed vectors with a transformed copy of the node plus its ID
embedding. The modalities' outputs are averaged; ``score = user · item``. Items never
seen in training have no graph neighbours and no trained ID embedding (it is masked);
their own content reaches them only through the layers' self path, which ranks them
poorly, so for scoring they take the mean of their seen content neighbours' embeddings
(a cosine kNN over the modalities, ``knn_k``).

MMRec's port keeps the ID embeddings and user preferences out of the optimiser (plain
tensors, not parameters) and always runs three layers; here they are trained and
``n_layers`` is honoured.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prismrec.models.graph import bipartite_adjacency, row_normalize
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import FixedGraph, bpr_loss, fit_module, xavier_normal_table
from prismrec.models.multimodal_graph import MultimodalEmbeddingModel, neighbour_fill, prepare_content


class ModalityGCN(torch.nn.Module):
    """MMGCN's graph network for one modality (mean aggregation, ID embeddings added per layer)."""

    def __init__(self, n_users: int, feature_dim: int, latent_size: int, embedding_size: int, n_layers: int) -> None:
        super().__init__()
        self.preference = xavier_normal_table(n_users, latent_size)
        self.projection = torch.nn.Linear(feature_dim, latent_size)
        sizes = [latent_size] + [embedding_size] * n_layers
        self.convolutions = torch.nn.ParameterList(xavier_normal_table(sizes[l], sizes[l + 1]) for l in range(n_layers))
        self.self_layers = torch.nn.ModuleList(torch.nn.Linear(sizes[l], sizes[l + 1]) for l in range(n_layers))
        self.combine_layers = torch.nn.ModuleList(torch.nn.Linear(sizes[l + 1], sizes[l + 1]) for l in range(n_layers))
        for layer in [*self.self_layers, *self.combine_layers]:
            torch.nn.init.xavier_normal_(layer.weight)

    def forward(self, features: torch.Tensor, ids: torch.Tensor, mean_graph: FixedGraph) -> torch.Tensor:
        x = F.normalize(torch.cat([self.preference, self.projection(features)]), dim=1)
        for convolution, self_layer, combine in zip(self.convolutions, self.self_layers, self.combine_layers):
            neighbours = F.leaky_relu(mean_graph.matmul(x @ convolution))
            own = F.leaky_relu(self_layer(x)) + ids
            x = F.leaky_relu(combine(neighbours) + own)
        return x


class MMGCN(MultimodalEmbeddingModel):
    """MMGCN on any named modalities (MMRec's ``MMGCN.yaml``; ``reg_weight`` and
    ``learning_rate`` picked from its grids).

    Example:
        >>> model = MMGCN(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 latent_size: int = 256, n_layers: int = 2, reg_weight: float = 1e-4, learning_rate: float = 1e-3,
                 batch_size: int = 2048, epochs: int = 500, early_stopping_metric: str = "ndcg@20",
                 patience: int = 20, eval_every: int = 1, seed: int = 0, knn_k: int = 10,
                 graph_cache_dir: str | None = None) -> None:
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        self.feature_names = feature_name_list(feature_names, "MMGCN")
        self.embedding_size, self.latent_size, self.n_layers = embedding_size, latent_size, n_layers
        self.reg_weight, self.learning_rate = reg_weight, learning_rate
        self.batch_size, self.epochs = batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.knn_k, self.graph_cache_dir = seed, knn_k, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        mean_graph = FixedGraph(row_normalize(bipartite_adjacency(train.matrix)))
        n_users, n_items = train.n_users, train.n_items
        network = torch.nn.Module()
        network.ids = xavier_normal_table(n_users + n_items, self.embedding_size)
        network.modalities = torch.nn.ModuleList(
            ModalityGCN(n_users, arrays[name].shape[1], self.latent_size, self.embedding_size, self.n_layers)
            for name in self.feature_names)
        node_seen = torch.from_numpy(np.concatenate([np.ones(n_users), seen]).astype(np.float32)).unsqueeze(1)
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]

        def forward() -> torch.Tensor:
            ids = network.ids * node_seen  # never-seen items have no ID embedding
            return sum(gcn(feature, ids, mean_graph) for gcn, feature in zip(network.modalities, features)) / len(
                features)

        def batch_loss(users, positives, negatives) -> torch.Tensor:
            nodes = forward()
            positives, negatives = positives + n_users, negatives + n_users
            penalty = (network.ids[users].pow(2) + network.ids[positives].pow(2)).mean() + sum(
                gcn.preference.pow(2).mean() for gcn in network.modalities)
            return bpr_loss(nodes[users], nodes[positives], nodes[negatives]) + self.reg_weight * penalty

        fill_unseen = neighbour_fill(arrays, seen, self.knn_k, self.graph_cache_dir)

        def publish() -> None:
            nodes = forward()
            self.user_embeddings_, self.item_embeddings_ = nodes[:n_users].clone(), fill_unseen(nodes[n_users:].clone())

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress)
