"""BPR-MF (Rendle et al. 2009): matrix factorisation trained with the pairwise BPR loss.

Training runs a compiled (numba) SGD kernel over the epoch's triplets. The default,
``batch_size=1``, is Rendle's plain per-sample SGD on one thread: no synchronisation, so it
stays fast on a busy machine. With ``batch_size > 1`` every sample of a batch takes its
gradient terms from the parameters as they were at the start of the batch (computed in
parallel); then the updates are applied row by row in sample order, each row by one
thread. Either way the result is the same for any number of threads, and a seed fixes it.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from prismrec.models.base import Recommender
from prismrec.models.training import TripletSampler, train_epochs


@numba.njit(parallel=True, cache=True, nogil=True)
def _bpr_epoch(user_factors, item_factors, item_bias, users, positives, negatives,
               batch_size, learning_rate, regularization, n_threads):  # pragma: no cover - compiled
    n_samples, n_factors = len(users), user_factors.shape[1]
    weighted_users = np.empty((batch_size, n_factors), dtype=np.float32)
    weighted_differences = np.empty((batch_size, n_factors), dtype=np.float32)
    weights = np.empty(batch_size, dtype=np.float32)
    losses = np.empty(batch_size, dtype=np.float64)
    decay = np.float32(1.0 - learning_rate * regularization)
    total_loss = 0.0
    for start in range(0, n_samples, batch_size):
        size = min(batch_size, n_samples - start)
        for s in numba.prange(size):  # gradient terms from the batch-start parameters
            u, i, j = users[start + s], positives[start + s], negatives[start + s]
            x = item_bias[i] - item_bias[j]
            for f in range(n_factors):
                x += user_factors[u, f] * (item_factors[i, f] - item_factors[j, f])
            losses[s] = math.log1p(math.exp(-x)) if x > -30.0 else -x  # -ln σ(x)
            weight = learning_rate / (1.0 + math.exp(min(x, 30.0)))  # learning_rate * σ(-x)
            weights[s] = weight
            for f in range(n_factors):
                weighted_users[s, f] = weight * user_factors[u, f]
                weighted_differences[s, f] = weight * (item_factors[i, f] - item_factors[j, f])
        for owner in numba.prange(n_threads):  # each row is updated by one thread, in sample order
            for s in range(size):
                u, i, j = users[start + s], positives[start + s], negatives[start + s]
                if u % n_threads == owner:
                    for f in range(n_factors):
                        user_factors[u, f] = decay * user_factors[u, f] + weighted_differences[s, f]
                if i % n_threads == owner:
                    item_bias[i] = decay * item_bias[i] + weights[s]
                    for f in range(n_factors):
                        item_factors[i, f] = decay * item_factors[i, f] + weighted_users[s, f]
                if j % n_threads == owner:
                    item_bias[j] = decay * item_bias[j] - weights[s]
                    for f in range(n_factors):
                        item_factors[j, f] = decay * item_factors[j, f] - weighted_users[s, f]
        for s in range(size):
            total_loss += losses[s]
    return total_loss


@numba.njit(cache=True, nogil=True)
def _bpr_epoch_sequential(user_factors, item_factors, item_bias, users, positives, negatives,
                          learning_rate, regularization):  # pragma: no cover - compiled
    n_factors = user_factors.shape[1]
    decay = np.float32(1.0 - learning_rate * regularization)
    total_loss = 0.0
    for s in range(len(users)):  # plain SGD: one sample at a time, in order
        u, i, j = users[s], positives[s], negatives[s]
        x = item_bias[i] - item_bias[j]
        for f in range(n_factors):
            x += user_factors[u, f] * (item_factors[i, f] - item_factors[j, f])
        total_loss += math.log1p(math.exp(-x)) if x > -30.0 else -x
        weight = np.float32(learning_rate / (1.0 + math.exp(min(x, 30.0))))
        item_bias[i] = decay * item_bias[i] + weight
        item_bias[j] = decay * item_bias[j] - weight
        for f in range(n_factors):
            user_value, positive_value, negative_value = user_factors[u, f], item_factors[i, f], item_factors[j, f]
            user_factors[u, f] = decay * user_value + weight * (positive_value - negative_value)
            item_factors[i, f] = decay * positive_value + weight * user_value
            item_factors[j, f] = decay * negative_value - weight * user_value
    return total_loss


def bpr_sgd_epoch(user_factors: torch.Tensor, item_factors: torch.Tensor, item_bias: torch.Tensor,
                  users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, *, learning_rate: float,
                  regularization: float, batch_size: int = 1) -> float:
    """Apply triplets in place with SGD on ``ln σ(x_uij) - λ/2 ||θ||²``; returns ``-Σ ln σ(x_uij)``.

    ``x_uij = b_i - b_j + p_u · (q_i - q_j)``. Each row touched by a sample is first shrunk
    by ``1 - learning_rate * λ``, then moved by ``learning_rate`` times its log-likelihood
    gradient taken at the batch start. Tensors must be float32, contiguous, on the CPU.

    Example:
        >>> import numpy as np, torch
        >>> users, items, bias = torch.tensor([[1.0, 0.0]]), torch.eye(2), torch.zeros(2)
        >>> _ = bpr_sgd_epoch(users, items, bias, np.array([0]), np.array([1]), np.array([0]),
        ...                   learning_rate=0.5, regularization=0.0)
        >>> [round(b, 4) for b in bias.tolist()]  # x = -1, σ(-x) ≈ 0.731: positive up, negative down
        [-0.3655, 0.3655]
    """
    tensors = (user_factors, item_factors, item_bias)
    if any(t.dtype != torch.float32 or not t.is_contiguous() or t.device.type != "cpu" for t in tensors):
        raise ValueError("bpr_sgd_epoch needs contiguous float32 CPU tensors")
    arrays = [t.numpy() for t in tensors]
    indices = [np.ascontiguousarray(a, dtype=np.int64) for a in (users, positives, negatives)]
    if batch_size <= 1:
        return float(_bpr_epoch_sequential(*arrays, *indices, float(learning_rate), float(regularization)))
    n_threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n_threads)
    return float(_bpr_epoch(*arrays, *indices, min(batch_size, max(len(indices[0]), 1)),
                            float(learning_rate), float(regularization), n_threads))


class BPR(Recommender):
    """BPR-MF with item biases: ``score(u, i) = b_i + p_u · q_i``.

    One epoch draws ``len(train)`` uniform triplets (user, seen item, unseen item) and
    applies them in batches of ``batch_size`` (see :func:`bpr_sgd_epoch`). With ``valid``
    given, training stops early on ``early_stopping_metric`` and keeps the best epoch
    (``best_epoch_``). Threads (``batch_size > 1`` only): ``torch.get_num_threads()``.

    Defaults chosen on ML-100k validation (bench/results/2026-12-02-fidelity-mmrec.md):
    ``regularization`` 0.01 (valid Recall@20 0.349 against 0.318 at 0.001, 0.310 at 0.003 and
    0.336 at 0.03); it peaks near epoch 40, so the cap is 100 epochs.

    Example:
        >>> model = BPR(factors=32, epochs=20, seed=0).fit(split.train, split.valid)  # doctest: +SKIP
        >>> items, scores = model.recommend([0, 1], k=10, exclude=split.train)  # doctest: +SKIP
    """

    def __init__(self, *, factors: int = 64, epochs: int = 100, learning_rate: float = 0.05,
                 regularization: float = 0.01, batch_size: int = 1, init_std: float = 0.1,
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
            users, positives, negatives = sampler.sample(len(train))
            loss = bpr_sgd_epoch(self.user_factors_, self.item_factors_, self.item_bias_, users, positives,
                                 negatives, learning_rate=self.learning_rate, regularization=self.regularization,
                                 batch_size=self.batch_size)
            return loss / max(len(train), 1)

        train_epochs(self, train, valid, run_epoch, epochs=self.epochs, metric=self.early_stopping_metric,
                     patience=self.patience, every=self.eval_every, progress=progress)

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64))
        user_rows = self.user_factors_.index_select(0, users)
        return torch.addmm(self.item_bias_.unsqueeze(0), user_rows, self.item_factors_.T)
