"""LGMRec (Guo et al. 2024, "LGMRec: Local and Global Graph Learning for Multimodal Recommendation").

Local view: collaborative embeddings (LightGCN over IDs) plus, per modality, projected
item features whose users take their items' mean, smoothed over the user-item graph.
Global view: per modality, soft memberships of items in ``hyper_num`` hyperedges (Gumbel
softmax of ``f_m H_m``; users sum their items'), through which the collaborative item
embeddings are passed (a hypergraph layer). ``final = local + alpha * normalize(global)``,
with a contrastive term between the modalities' hypergraph embeddings. At scoring time
the memberships are the plain softmax (no Gumbel noise), so scores are deterministic.
Never-seen items are scored from their content neighbours (a cosine kNN over the modalities).
"""
from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from prismrec.models.graph import (
    normalized_bipartite_adjacency,
    propagate_layer_mean,
    row_normalize,
    to_torch_sparse_csr,
)
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import FixedGraph, bpr_loss, fit_module, xavier_table
from prismrec.models.multimodal_graph import (
    ItemGraphNetwork,
    MultimodalEmbeddingModel,
    neighbour_fill,
    prepare_content,
)


def hypergraph_contrast(first: torch.Tensor, second: torch.Tensor, rows: torch.Tensor, temperature: float):
    """Summed InfoNCE of ``first[rows]`` against all of ``second`` (positive: the same row)."""
    logits = F.normalize(first[rows], dim=1) @ F.normalize(second, dim=1).T / temperature
    return F.cross_entropy(logits, rows, reduction="sum")


class LGMRec(MultimodalEmbeddingModel):
    """LGMRec on any named modalities (MMRec's ``LGMRec.yaml``, Baby settings).

    Example:
        >>> model = LGMRec(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 n_ui_layers: int = 2, n_mm_layers: int = 2, n_hyper_layers: int = 1, hyper_num: int = 4,
                 keep_rate: float = 0.5, alpha: float = 0.3, temperature: float = 0.2, cl_weight: float = 1e-4,
                 reg_weight: float = 1e-6, learning_rate: float = 1e-3, batch_size: int = 2048, epochs: int = 500,
                 early_stopping_metric: str = "ndcg@20", patience: int = 20, eval_every: int = 1, seed: int = 0,
                 knn_k: int = 10, graph_cache_dir: str | None = None) -> None:
        if not 0.0 < keep_rate <= 1.0:
            raise ValueError(f"keep_rate (share of hyperedge memberships kept) must be in (0, 1], got {keep_rate}")
        if hyper_num < 1:
            raise ValueError(f"hyper_num must be at least 1, got {hyper_num}")
        self.feature_names = feature_name_list(feature_names, "LGMRec")
        self.embedding_size, self.n_ui_layers, self.n_mm_layers = embedding_size, n_ui_layers, n_mm_layers
        self.n_hyper_layers, self.hyper_num, self.keep_rate, self.alpha = n_hyper_layers, hyper_num, keep_rate, alpha
        self.temperature, self.cl_weight, self.reg_weight = temperature, cl_weight, reg_weight
        self.learning_rate, self.batch_size, self.epochs = learning_rate, batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.knn_k, self.graph_cache_dir = seed, knn_k, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        normalized = normalized_bipartite_adjacency(train.matrix)
        adjacency, smoothing = to_torch_sparse_csr(normalized), FixedGraph(normalized)
        interactions = sp.csr_matrix(train.matrix, dtype=np.float32)
        interactions.data[:] = 1.0
        user_sum, user_mean = FixedGraph(interactions), FixedGraph(row_normalize(interactions))
        dims = {name: arrays[name].shape[1] for name in self.feature_names}
        network = ItemGraphNetwork(train.n_users, train.n_items, self.embedding_size, seen, dims,
                                   self.embedding_size, projection_bias=False)
        network.hyperedges = torch.nn.ParameterList(xavier_table(dim, self.hyper_num) for dim in dims.values())
        for projection in network.projections:
            torch.nn.init.xavier_uniform_(projection.weight)
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]
        n_users = train.n_users

        def memberships(feature, hyperedges):
            items = feature @ hyperedges
            users = user_sum.matmul(items)
            if not network.training:
                return torch.softmax(items / self.temperature, 1), torch.softmax(users / self.temperature, 1)
            drop = 1.0 - self.keep_rate
            return (F.dropout(F.gumbel_softmax(items, self.temperature, dim=1), drop),
                    F.dropout(F.gumbel_softmax(users, self.temperature, dim=1), drop))

        def forward():
            collaborative = propagate_layer_mean(adjacency, network.ego(), self.n_ui_layers)
            local, global_views = collaborative, []
            for projection, hyperedges, feature in zip(network.projections, network.hyperedges, features):
                items = projection(feature)
                modality = smoothing.propagate(torch.cat([user_mean.matmul(items), items]), self.n_mm_layers)
                local = local + F.normalize(modality, dim=1)
                item_members, user_members = memberships(feature, hyperedges)
                item_view = collaborative[n_users:]
                for _ in range(self.n_hyper_layers):
                    latent = item_members.T @ item_view
                    item_view, user_view = item_members @ latent, user_members @ latent
                global_views.append(torch.cat([user_view, item_view]))
            return local + self.alpha * F.normalize(sum(global_views), dim=1), global_views

        def batch_loss(users, positives, negatives) -> torch.Tensor:
            final, global_views = forward()
            rows = final[users], final[positives + n_users], final[negatives + n_users]
            contrast = sum(hypergraph_contrast(first[:n_users], second[:n_users], users, self.temperature)
                           + hypergraph_contrast(first[n_users:], second[n_users:], positives, self.temperature)
                           for first, second in itertools.combinations(global_views, 2))
            penalty = sum(part.norm() for part in rows) / len(users)
            return bpr_loss(*rows) + self.cl_weight * contrast + self.reg_weight * penalty

        fill_unseen = neighbour_fill(arrays, seen, self.knn_k, self.graph_cache_dir)

        def publish() -> None:
            final = forward()[0]
            self.user_embeddings_, self.item_embeddings_ = final[:n_users].clone(), fill_unseen(final[n_users:].clone())

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress)
