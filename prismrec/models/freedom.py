"""FREEDOM (Zhou & Shen 2023, "A Tale of Two Graphs: Freezing and Denoising Graph Structures
for Multimodal Recommendation").

Two graphs: a frozen item-item graph (the weighted sum of each modality's binary cosine
kNN graph, symmetric-normalised) and the user-item graph, denoised in every epoch by
degree-sensitive edge pruning. An item is ``LightGCN(user-item graph)_i + (S^L E)_i``;
each modality's projected features join through an auxiliary BPR term weighted by
``reg_weight``. Items never seen in training have no trained ID embedding (it is masked
to zero), and for scoring they take the mean of their seen content neighbours' final
embeddings.
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.models.content import item_content_graph, modality_weights, weighted_graph_sum
from prismrec.models.graph import normalized_bipartite_adjacency, to_torch_sparse_csr
from prismrec.models.item_graph import degree_sensitive_edge_sample
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import FixedGraph, bpr_loss, fit_module, projected_bpr_loss
from prismrec.models.multimodal_graph import (
    ItemGraphNetwork,
    MultimodalEmbeddingModel,
    embeddings_from_neighbours,
    prepare_content,
)


class FREEDOM(MultimodalEmbeddingModel):
    """FREEDOM with the paper's defaults (MMRec's ``FREEDOM.yaml``; ``dropout`` 0.8 and
    ``reg_weight`` 1e-4 are picked from the paper's grids, to be tuned per data set).

    ``modality_weights`` maps feature names to their weight in the item graph (the paper's
    image weight 0.1); unlisted names get ``1 / n_modalities``, then weights are normalised.

    Example:
        >>> model = FREEDOM(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"),
                 modality_weights: dict | None = None, embedding_size: int = 64, knn_k: int = 10,
                 n_mm_layers: int = 1, n_ui_layers: int = 2,
                 dropout: float = 0.8, reg_weight: float = 1e-4, learning_rate: float = 1e-3,
                 batch_size: int = 2048, epochs: int = 500, early_stopping_metric: str = "ndcg@20",
                 patience: int = 20, eval_every: int = 1, seed: int = 0, graph_cache_dir: str | None = None) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout (share of user-item edges pruned per epoch) must be in [0, 1), got {dropout}")
        self.feature_names = feature_name_list(feature_names, "FREEDOM")
        self.modality_weights = dict({"image": 0.1, "text": 0.9} if modality_weights is None else modality_weights)
        self.embedding_size = embedding_size
        self.knn_k, self.n_mm_layers, self.n_ui_layers = knn_k, n_mm_layers, n_ui_layers
        self.dropout, self.reg_weight, self.learning_rate = dropout, reg_weight, learning_rate
        self.batch_size, self.epochs = batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.graph_cache_dir = seed, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        weights = modality_weights(self.feature_names, self.modality_weights)
        graphs = [item_content_graph(arrays[name], k=self.knn_k, binary=True, normalization="symmetric",
                                     cache_dir=self.graph_cache_dir) for name in self.feature_names]
        item_graph = FixedGraph(weighted_graph_sum(graphs, weights))
        full_adjacency = to_torch_sparse_csr(normalized_bipartite_adjacency(train.matrix))
        network = ItemGraphNetwork(train.n_users, train.n_items, self.embedding_size, seen,
                                   {name: arrays[name].shape[1] for name in self.feature_names},
                                   self.embedding_size)  # projections meet user embeddings in the BPR term
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]
        rng = np.random.default_rng(self.seed)
        epoch_graph = {"adjacency": full_adjacency}

        def before_epoch(epoch: int) -> None:  # degree-sensitive edge pruning, redrawn every epoch
            if self.dropout > 0:
                kept = degree_sensitive_edge_sample(train.matrix, 1.0 - self.dropout, rng)
                epoch_graph["adjacency"] = to_torch_sparse_csr(normalized_bipartite_adjacency(kept))

        def batch_loss(users, positives, negatives) -> torch.Tensor:
            content = network.content_part(item_graph, self.n_mm_layers)
            user_rows, positive_rows, negative_rows = network.batch_rows(
                epoch_graph["adjacency"], self.n_ui_layers, users, positives, negatives, content)
            loss = bpr_loss(user_rows, positive_rows, negative_rows)
            for projection, feature in zip(network.projections, features):
                loss = loss + self.reg_weight * projected_bpr_loss(user_rows, projection, feature[positives],
                                                                   feature[negatives])
            return loss

        def publish() -> None:
            content = network.content_part(item_graph, self.n_mm_layers)
            self.user_embeddings_, items = network.all_rows(full_adjacency, self.n_ui_layers, content)
            self.item_embeddings_ = embeddings_from_neighbours(items, item_graph.matrix, seen)

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress,
                   before_epoch=before_epoch)
