"""BPR-MF (Rendle et al. 2009): matrix factorisation trained with the pairwise BPR loss.

Training is hand-written SGD on whole batches of triplets: gather the rows, compute
``x_uij``, the sigmoid and the gradients in a few vectorised torch operations, and
``index_add_`` the updates. Every sample of a batch sees the parameters as they were at
the start of the batch (like Hogwild within a batch); repeated rows add up their updates.
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.models.base import Recommender
from prismrec.models.training import TripletSampler, train_epochs


def bpr_sgd_step(user_factors: torch.Tensor, item_factors: torch.Tensor, item_bias: torch.Tensor,
                 users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                 learning_rate: float, regularization: float) -> float:
    """One SGD step (in place) on ``sum ln σ(x_uij) - λ/2 ||θ||²`` for a batch of triplets.

    ``x_uij = b_i - b_j + p_u · (q_i - q_j)``; the L2 term covers the rows and biases the
    batch touches. Returns the batch loss ``-sum ln σ(x_uij)`` (before the update).

    Example:
        >>> import torch
        >>> users, items, bias = torch.zeros(1, 2), torch.eye(2), torch.zeros(2)
        >>> users[0, 0] = 1.0
        >>> _ = bpr_sgd_step(users, items, bias, torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), 0.5, 0.0)
        >>> [round(b, 4) for b in bias.tolist()]  # x = -1, σ(-x) ≈ 0.731: positive up, negative down
        [-0.3655, 0.3655]
    """
    user_rows = user_factors.index_select(0, users)  # index_select is ~10x faster than fancy indexing
    positive_rows, negative_rows = item_factors.index_select(0, positives), item_factors.index_select(0, negatives)
    positive_bias, negative_bias = item_bias.index_select(0, positives), item_bias.index_select(0, negatives)
    difference = positive_rows - negative_rows
    x = (user_rows * difference).sum(1).add_(positive_bias).sub_(negative_bias)
    loss = -torch.nn.functional.logsigmoid(x).sum().item()
    # step = learning_rate * gradient of the objective; d ln σ(x) / dx = σ(-x)
    weight = torch.sigmoid(x.neg_()).mul_(learning_rate)
    decay = -learning_rate * regularization
    weight_column = weight.unsqueeze(1)
    user_step = difference.mul_(weight_column).add_(user_rows, alpha=decay)
    weighted_user = user_rows.mul_(weight_column)
    positive_step = positive_rows.mul_(decay).add_(weighted_user)
    negative_step = negative_rows.mul_(decay).sub_(weighted_user)
    positive_bias_step = positive_bias.mul_(decay).add_(weight)
    negative_bias_step = negative_bias.mul_(decay).sub_(weight)
    user_factors.index_add_(0, users, user_step)
    item_factors.index_add_(0, positives, positive_step)
    item_factors.index_add_(0, negatives, negative_step)
    item_bias.index_add_(0, positives, positive_bias_step)
    item_bias.index_add_(0, negatives, negative_bias_step)
    return loss


class BPR(Recommender):
    """BPR-MF with item biases: ``score(u, i) = b_i + p_u · q_i``.

    One epoch draws ``len(train)`` uniform triplets (user, seen item, unseen item) and
    applies them in batches of ``batch_size``. With ``valid`` given, training stops early
    on ``early_stopping_metric`` and keeps the best epoch (``best_epoch_``).

    Example:
        >>> model = BPR(factors=32, epochs=20, seed=0).fit(split.train, split.valid)  # doctest: +SKIP
        >>> items, scores = model.recommend([0, 1], k=10, exclude=split.train)  # doctest: +SKIP
    """

    def __init__(self, *, factors: int = 64, epochs: int = 30, learning_rate: float = 0.05,
                 regularization: float = 0.001, batch_size: int = 8192, init_std: float = 0.1,
                 early_stopping_metric: str = "ndcg@20", patience: int = 5, eval_every: int = 1,
                 seed: int = 0) -> None:
        self.factors, self.epochs, self.learning_rate = factors, epochs, learning_rate
        self.regularization, self.batch_size, self.init_std = regularization, batch_size, init_std
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed = seed

    def _fit(self, train, valid, item_features, progress) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        self.user_factors_ = torch.randn(train.n_users, self.factors, generator=generator) * self.init_std
        self.item_factors_ = torch.randn(train.n_items, self.factors, generator=generator) * self.init_std
        self.item_bias_ = torch.zeros(train.n_items)
        sampler = TripletSampler(train, seed=self.seed)

        def run_epoch(epoch: int) -> float:
            return self._train_epoch(sampler, len(train))

        train_epochs(self, train, valid, run_epoch, epochs=self.epochs, metric=self.early_stopping_metric,
                     patience=self.patience, every=self.eval_every, progress=progress)

    def _train_epoch(self, sampler: TripletSampler, n_samples: int) -> float:
        """Draw ``n_samples`` triplets and apply them in batches; returns the mean BPR loss."""
        users, positives, negatives = (torch.from_numpy(a) for a in sampler.sample(n_samples))
        total = 0.0
        for start in range(0, n_samples, self.batch_size):
            batch = slice(start, start + self.batch_size)
            total += bpr_sgd_step(self.user_factors_, self.item_factors_, self.item_bias_, users[batch],
                                  positives[batch], negatives[batch], self.learning_rate, self.regularization)
        return total / max(n_samples, 1)

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64))
        return torch.addmm(self.item_bias_.unsqueeze(0), self.user_factors_[users], self.item_factors_.T)
