"""SLMRec (Tao et al. 2022, "Self-supervised Learning for Multimedia Recommendation"),
with its fine-and-coarse (FAC) self-supervised task, the paper's default.

One LightGCN branch per view over the user-item graph: the ID view (user and item ID
embeddings) and one view per modality (user IDs with the item's projected, L2-normalised
features). The views are concatenated and mapped to the final user and item embeddings;
the main loss is an in-batch InfoNCE between users and their positive items (no negative
sampling). FAC aligns the ID view with each modality in turn, from fine to coarse: the
ID view is mapped into the first modality's space, that into the next one's, and so on,
each step with an in-batch InfoNCE (every space has ``embedding_size`` dimensions; the
paper's two-modality code halves the last one). A never-seen item keeps its content views (its ID
view is masked), and for scoring takes the mean of its seen content neighbours' embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from prismrec.models.graph import normalized_bipartite_adjacency, propagate_layer_mean, to_torch_sparse_csr
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.mgcn import info_nce
from prismrec.models.module_training import fit_module
from prismrec.models.multimodal_graph import ItemGraphNetwork, MultimodalEmbeddingModel, neighbour_fill, prepare_content


def _raw_info_nce(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE on raw dot products (FAC does not normalise)."""
    return F.cross_entropy(first @ second.T / temperature, torch.arange(len(first)))


class SLMRec(MultimodalEmbeddingModel):
    """SLMRec (FAC) on any named modalities (MMRec's ``SLMRec.yaml``; ``learning_rate``,
    ``ssl_alpha`` and ``ssl_temperature`` picked from its grids).

    Example:
        >>> model = SLMRec(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 n_layers: int = 3, temperature: float = 0.2, ssl_alpha: float = 0.01, ssl_temperature: float = 0.1,
                 weight_decay: float = 1e-4, learning_rate: float = 1e-3, batch_size: int = 2048, epochs: int = 500,
                 early_stopping_metric: str = "ndcg@20", patience: int = 20, eval_every: int = 1, seed: int = 0,
                 knn_k: int = 10, graph_cache_dir: str | None = None) -> None:
        if temperature <= 0 or ssl_temperature <= 0:
            raise ValueError(f"temperatures must be positive, got temperature={temperature}, "
                             f"ssl_temperature={ssl_temperature}")
        self.feature_names = feature_name_list(feature_names, "SLMRec")
        self.embedding_size, self.n_layers, self.temperature = embedding_size, n_layers, temperature
        self.ssl_alpha, self.ssl_temperature, self.weight_decay = ssl_alpha, ssl_temperature, weight_decay
        self.learning_rate, self.batch_size, self.epochs = learning_rate, batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.knn_k, self.graph_cache_dir = seed, knn_k, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        adjacency = to_torch_sparse_csr(normalized_bipartite_adjacency(train.matrix))
        size, n_users, n_views = self.embedding_size, train.n_users, len(self.feature_names) + 1
        network = ItemGraphNetwork(n_users, train.n_items, size, seen,
                                   {name: arrays[name].shape[1] for name in self.feature_names}, size)
        network.user_output = torch.nn.Linear(size * n_views, size)
        network.item_output = torch.nn.Linear(size * n_views, size)
        # FAC: the ID view mapped into each modality's space in turn, and each modality's own map
        network.chain = torch.nn.ModuleList(torch.nn.Linear(size, size) for _ in self.feature_names)
        network.targets = torch.nn.ModuleList(torch.nn.Linear(size, size) for _ in self.feature_names)
        for layer in [*network.projections, network.user_output, network.item_output, *network.chain,
                      *network.targets]:
            torch.nn.init.xavier_uniform_(layer.weight)
        features = [F.normalize(torch.from_numpy(arrays[name]), dim=1) for name in self.feature_names]

        def forward():
            views = [propagate_layer_mean(adjacency, network.ego(), self.n_layers)]
            for projection, feature in zip(network.projections, features):
                views.append(propagate_layer_mean(
                    adjacency, torch.cat([network.user_embedding, projection(feature)]), self.n_layers))
            fused = torch.cat(views, dim=1)
            return network.user_output(fused[:n_users]), network.item_output(fused[n_users:]), views

        def batch_loss(users, items, negatives) -> torch.Tensor:  # in-batch negatives only
            user_table, item_table, views = forward()
            loss = info_nce(user_table[users], item_table[items], self.temperature)
            chained = views[0][n_users:][items]
            for link, target, view in zip(network.chain, network.targets, views[1:]):
                chained = link(chained)
                loss = loss + self.ssl_alpha * _raw_info_nce(chained, target(view[n_users:][items]),
                                                             self.ssl_temperature)
            return loss

        fill_unseen = neighbour_fill(arrays, seen, self.knn_k, self.graph_cache_dir)

        def publish() -> None:
            user_table, item_table, _ = forward()
            self.user_embeddings_, self.item_embeddings_ = user_table.clone(), fill_unseen(item_table.clone())

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress,
                   weight_decay=self.weight_decay)
