"""LightGCN (He et al. 2020): embeddings smoothed over the user-item graph, trained with BPR.

The normalised adjacency ``Â`` is built once (torch sparse CSR). Every mini-batch
propagates the embeddings through ``n_layers`` layers, as the model requires, so the cost
of an epoch is set by the number of batches: the default batch is large (8192 triplets),
triplets are sampled for the whole epoch at once, only the batch's rows of the last layer
are computed, and the backward pass starts from the batch's rows and reuses ``Â`` (it is
symmetric) instead of a transposed copy (see :func:`graph.propagated_rows`).
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.models.base import Recommender
from prismrec.models.graph import (
    normalized_bipartite_adjacency,
    propagate_layer_mean,
    propagated_rows,
    to_torch_sparse_csr,
)
from prismrec.models.module_training import threads_for
from prismrec.models.training import Adam, TripletSampler, fitted_batch_size, minibatch_epoch, train_epochs


class LightGCN(Recommender):
    """LightGCN with the BPR loss and L2 on the batch's layer-0 embeddings.

    After training, the propagated embeddings are published as ``user_embeddings_`` and
    ``item_embeddings_``; ``score(u) = user_embeddings_[u] @ item_embeddings_.T``.

    Example:
        >>> model = LightGCN(embedding_size=64, n_layers=3, epochs=50).fit(train, valid)  # doctest: +SKIP
        >>> model.score([0, 1]).shape  # doctest: +SKIP
        torch.Size([2, 1000])
    """

    def __init__(self, *, embedding_size: int = 64, n_layers: int = 3, reg: float = 1e-4,
                 learning_rate: float = 0.005, batch_size: int = 8192, epochs: int = 50, init_std: float = 0.1,
                 early_stopping_metric: str = "ndcg@20", patience: int = 5, eval_every: int = 1,
                 seed: int = 0) -> None:
        self.embedding_size, self.n_layers, self.reg = embedding_size, n_layers, reg
        self.learning_rate, self.batch_size, self.epochs, self.init_std = learning_rate, batch_size, epochs, init_std
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed = seed

    def _fit(self, train, valid, item_features, progress) -> None:
        adjacency = to_torch_sparse_csr(normalized_bipartite_adjacency(train.matrix))
        generator = torch.Generator().manual_seed(self.seed)
        n_nodes = train.n_users + train.n_items
        # one table: rows 0..n_users-1 are users, the rest items (the graph's node order)
        embeddings = torch.nn.Parameter(torch.randn(n_nodes, self.embedding_size, generator=generator) * self.init_std)
        optimizer = Adam([embeddings], learning_rate=self.learning_rate)
        sampler = TripletSampler(train, seed=self.seed)
        batch_size = fitted_batch_size(self, self.batch_size, len(train))
        n_users = train.n_users

        def run_epoch(epoch: int) -> float:
            users, positives, negatives = (torch.from_numpy(a) for a in sampler.sample(len(train)))
            positives, negatives = positives + n_users, negatives + n_users
            loss = minibatch_epoch(optimizer, lambda *batch: self._batch_loss(adjacency, embeddings, *batch),
                                   users, positives, negatives, batch_size)
            self._publish(adjacency, embeddings.detach(), n_users)
            return loss

        with threads_for(train.n_users + train.n_items):  # small graphs: one thread (see threads_for)
            train_epochs(self, train, valid, run_epoch, epochs=self.epochs, metric=self.early_stopping_metric,
                         patience=self.patience, every=self.eval_every, progress=progress)

    def _batch_loss(self, adjacency, embeddings, users, positives, negatives) -> torch.Tensor:
        """Mean BPR loss of the batch plus ``reg/2 * ||layer-0 rows||² / batch``."""
        # only the batch's rows of the propagated table are needed (and differentiated)
        rows, position = torch.unique(torch.cat([users, positives, negatives]), return_inverse=True)
        propagated = propagated_rows(adjacency, embeddings, rows, self.n_layers)
        user_rows, positive_rows, negative_rows = propagated.index_select(0, position).view(3, len(users), -1)
        x = (user_rows * (positive_rows - negative_rows)).sum(1)
        ego = torch.cat([embeddings.index_select(0, nodes) for nodes in (users, positives, negatives)])
        return -torch.nn.functional.logsigmoid(x).mean() + self.reg * 0.5 * ego.pow(2).sum() / len(users)

    @torch.no_grad()
    def _publish(self, adjacency, embeddings: torch.Tensor, n_users: int) -> None:
        propagated = propagate_layer_mean(adjacency, embeddings, self.n_layers)
        self.user_embeddings_ = propagated[:n_users].clone()
        self.item_embeddings_ = propagated[n_users:].clone()

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64))
        return self.user_embeddings_.index_select(0, users) @ self.item_embeddings_.T
