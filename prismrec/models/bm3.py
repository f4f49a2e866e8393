"""BM3 (Zhou et al. 2023, "Bootstrap Latent Representations for Multi-modal Recommendation").

Self-supervised, without negative sampling: a LightGCN backbone gives the online user
and item embeddings; the target view is a dropout copy with stopped gradient. A shared
predictor maps online embeddings (and each modality's projected features) towards the
targets under a cosine loss: user <-> item, modality -> item, and modality -> its own
dropout view, plus ``reg_weight`` times the tables' Frobenius norms.

Items never seen in training cannot be reached by the backbone, but the modality branch
is trained to predict an item's embedding from its content: a never-seen item takes the
mean of ``predictor(projection_m(f_m))`` over its modalities (rescaled to the warm items'
mean norm) as its online embedding.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prismrec.models.graph import normalized_bipartite_adjacency, to_torch_sparse_csr
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import fit_module
from prismrec.models.multimodal_graph import ItemGraphNetwork, MultimodalEmbeddingModel, prepare_content


def _cosine_distance(online: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(online, target.detach(), dim=-1).mean()


class BM3(MultimodalEmbeddingModel):
    """BM3 on any named modalities (MMRec's ``BM3.yaml``; ``n_layers``, ``dropout`` and
    ``reg_weight`` take the first value of each grid, to be tuned per data set).

    Published: ``user_embeddings_`` and ``item_embeddings_`` after the predictor, so
    ``score = user_embeddings_ @ item_embeddings_.T`` as in the paper.

    Example:
        >>> model = BM3(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 n_layers: int = 1, dropout: float = 0.3, reg_weight: float = 0.1, cl_weight: float = 2.0,
                 learning_rate: float = 1e-3, batch_size: int = 2048, epochs: int = 500,
                 early_stopping_metric: str = "ndcg@20", patience: int = 20, eval_every: int = 1,
                 seed: int = 0) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout (of the target view) must be in [0, 1), got {dropout}")
        self.feature_names = feature_name_list(feature_names, "BM3")
        self.embedding_size, self.n_layers, self.dropout = embedding_size, n_layers, dropout
        self.reg_weight, self.cl_weight, self.learning_rate = reg_weight, cl_weight, learning_rate
        self.batch_size, self.epochs = batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed = seed

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        adjacency = to_torch_sparse_csr(normalized_bipartite_adjacency(train.matrix))
        network = ItemGraphNetwork(train.n_users, train.n_items, self.embedding_size, seen,
                                   {name: arrays[name].shape[1] for name in self.feature_names}, self.embedding_size)
        network.predictor = torch.nn.Linear(self.embedding_size, self.embedding_size)
        for layer in [network.predictor, *network.projections]:
            torch.nn.init.xavier_normal_(layer.weight)
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]

        def online():  # the backbone: LightGCN rows, items plus their ID embedding
            return network.all_rows(adjacency, self.n_layers, network.item_ids())

        def batch_loss(users, items, negatives) -> torch.Tensor:  # no negative sampling
            user_table, item_table = online()
            with torch.no_grad():
                user_target = F.dropout(user_table[users], self.dropout)
                item_target = F.dropout(item_table[items], self.dropout)
            loss = (_cosine_distance(network.predictor(user_table[users]), item_target)
                    + _cosine_distance(network.predictor(item_table[items]), user_target))
            for projection, feature in zip(network.projections, features):
                projected = projection(feature[items])
                predicted = network.predictor(projected)
                with torch.no_grad():
                    own_target = F.dropout(projected, self.dropout)
                loss = loss + self.cl_weight * (_cosine_distance(predicted, item_target)
                                                + _cosine_distance(predicted, own_target))
            return loss + self.reg_weight * (user_table.norm() + item_table.norm()) / train.n_items

        def publish() -> None:
            user_table, item_table = online()
            item_table = _content_for_unseen(network, features, item_table, seen)
            self.user_embeddings_ = network.predictor(user_table).detach().clone()
            self.item_embeddings_ = network.predictor(item_table).detach().clone()

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress)


def _content_for_unseen(network, features, item_table: torch.Tensor, seen: np.ndarray) -> torch.Tensor:
    """Replace never-seen items' online rows by the modality branch's prediction of them."""
    cold = torch.from_numpy(np.flatnonzero(~seen))
    if len(cold) == 0 or not seen.any():
        return item_table
    predicted, count = torch.zeros(len(cold), item_table.shape[1]), torch.zeros(len(cold), 1)
    for projection, feature in zip(network.projections, features):
        rows = feature[cold]
        present = (rows.abs().sum(1, keepdim=True) > 0).float()  # a missing modality adds nothing
        predicted += present * network.predictor(projection(rows))
        count += present
    warm_norm = item_table[torch.from_numpy(seen)].norm(dim=1).mean()
    has_content = count.squeeze(1) > 0
    predicted = F.normalize(predicted / count.clamp(min=1), dim=1) * warm_norm
    result = item_table.clone()
    result[cold[has_content]] = predicted[has_content]
    return result
