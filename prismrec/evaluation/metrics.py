"""Ranking metrics as pure tensor functions.

Every function takes ``hits``, a bool tensor ``[n_users, K]`` telling whether the item at
rank ``j`` (0-based) of a user's list is relevant, and ``n_relevant`` ``[n_users]``, the
number of relevant items of each user, and returns a float tensor ``[n_users]`` for the
cut-off ``k <= K``. Definitions follow trec_eval (``recall_k``, ``P_k``, ``ndcg_cut_k``,
``map_cut_k``, and ``recip_rank`` over the top-k), so results match pytrec_eval.

Example:
    >>> import torch
    >>> hits = torch.tensor([[False, True, False]])
    >>> recall(hits, torch.tensor([2]), 3).item(), mrr(hits, torch.tensor([2]), 3).item()
    (0.5, 0.5)
"""
from __future__ import annotations

import torch


def _cut(hits: torch.Tensor, k: int) -> torch.Tensor:
    if k > hits.shape[1]:
        raise ValueError(f"cut-off k={k} exceeds the list length {hits.shape[1]}")
    return hits[:, :k].float()


def recall(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Relevant items in the top-k divided by all relevant items."""
    return _cut(hits, k).sum(1) / n_relevant.clamp(min=1).float()


def precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Relevant items in the top-k divided by k."""
    return _cut(hits, k).sum(1) / k


def hit_rate(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """1 if any relevant item is in the top-k, else 0."""
    return (_cut(hits, k).sum(1) > 0).float()


def _discounts(k: int) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))


def ndcg(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Binary-gain DCG@k over the ideal DCG of ``min(n_relevant, k)`` relevant items."""
    discounts = _discounts(k)
    dcg = (_cut(hits, k).double() * discounts).sum(1)
    ideal_cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), discounts.cumsum(0)])
    idcg = ideal_cumulative[n_relevant.clamp(min=0, max=k).long()]
    return torch.where(idcg > 0, dcg / idcg.clamp(min=1e-12), torch.zeros_like(dcg)).float()


def mrr(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Reciprocal rank of the first relevant item in the top-k (0 when none)."""
    cut = _cut(hits, k)
    first = cut.argmax(1)
    return torch.where(cut.sum(1) > 0, 1.0 / (first + 1).float(), torch.zeros(len(cut)))


def average_precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of precision@j at each relevant rank j <= k, divided by all relevant items (trec_eval)."""
    cut = _cut(hits, k)
    precision_at_rank = cut.cumsum(1) / torch.arange(1, k + 1, dtype=torch.float32)
    return (precision_at_rank * cut).sum(1) / n_relevant.clamp(min=1).float()


METRICS = {
    "recall": recall,
    "ndcg": ndcg,
    "hit": hit_rate,
    "precision": precision,
    "mrr": mrr,
    "map": average_precision,
}

