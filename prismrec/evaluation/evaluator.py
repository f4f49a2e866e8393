"""One batched evaluator for every model: full ranking over all items, or sampled.

Scores come from ``model.score(users)`` in batches; items the user already has in the
``exclude`` parts (train, and at test time valid) are set to ``-inf``; the top-K lists
are compared with the target part through pure metric functions.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from prismrec.data.interactions import Interactions
from prismrec.evaluation import metrics as metric_functions
from prismrec.models.base import mask_seen


@dataclass(eq=False)
class EvaluationResult:
    """Per-user metric vectors, their means, and the top-K lists (item indices)."""

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    summary: dict[str, float]
    topk: np.ndarray
    protocol: str = "full ranking"
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        if key not in self.summary:
            raise KeyError(f"no metric {key!r} in this result; it has {sorted(self.summary)}")
        return self.summary[key]

    def save(self, path: str | Path) -> None:
        """Save per-user vectors (``.npz``) so that runs can be compared with a paired test."""
        from prismrec.io import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, users=self.users, **{f"metric:{k}": v for k, v in self.per_user.items()})

    @staticmethod
    def load_per_user(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with np.load(path) as data:
            per_user = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("metric:")}
            return data["users"], per_user


class Evaluator:
    """Rank all items (or a sampled candidate set) for each user of a target part.

    Example:
        >>> evaluator = Evaluator(ks=(10, 20))
        >>> result = evaluator.evaluate(model, split.test, exclude=[split.train, split.valid])  # doctest: +SKIP
        >>> result["ndcg@20"]  # doctest: +SKIP
    """

    def __init__(
        self,
        ks: Sequence[int] = (10, 20),
        metrics: Sequence[str] = tuple(metric_functions.METRICS),
        *,
        batch_size: int = 2048,
        sampled_negatives: int | None = None,
        seed: int = 0,
    ) -> None:
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be positive cut-offs, got {list(ks)}")
        self.ks = sorted(set(int(k) for k in ks))
        unknown = [m for m in metrics if m not in metric_functions.METRICS]
        if unknown:
            raise KeyError(f"unknown metric(s) {unknown}; choose from {sorted(metric_functions.METRICS)}")
        self.metrics = tuple(metrics)
        self.batch_size = batch_size
        self.sampled_negatives = sampled_negatives
        self.seed = seed

    @property
    def protocol(self) -> str:
        if self.sampled_negatives is None:
            return "full ranking"
        return f"sampled: positives + {self.sampled_negatives} sampled negatives"

    def metric_key(self, name: str, k: int) -> str:
        """``ndcg@10`` in full ranking, ``ndcg@10/sampled99`` in sampled mode."""
        suffix = "" if self.sampled_negatives is None else f"/sampled{self.sampled_negatives}"
        return f"{name}@{k}{suffix}"

    @torch.no_grad()
    def evaluate(
        self,
        model,
        target: Interactions,
        exclude: Interactions | Sequence[Interactions] = (),
        *,
        popularity_from: Interactions | None = None,
        candidate_items: np.ndarray | None = None,
        users: np.ndarray | None = None,
    ) -> EvaluationResult:
        """Evaluate ``model`` on users with at least one interaction in ``target``.

        ``exclude``: parts whose items are masked (train; valid too at test time).
        ``candidate_items``: restrict the ranking to these items (cold-start evaluation).
        ``popularity_from``: part used for the average-popularity metric (default: first exclude).
        """
        excluded = [exclude] if isinstance(exclude, Interactions) else list(exclude)
        seen = _union_matrix(excluded, target)
        target_matrix = target.matrix
        if users is None:
            users = target.active_users()
        users = np.asarray(users, dtype=np.int64)
        if len(users) == 0:
            raise ValueError(f"{target.source}: the target part has no users with interactions to evaluate")
        max_k = min(max(self.ks), target.n_items)
        candidate_mask = _candidate_mask(candidate_items, target.n_items)
        all_known = _union_matrix([*excluded, target], target) if self.sampled_negatives else None
        generator = torch.Generator().manual_seed(self.seed)
        topk = np.empty((len(users), max_k), dtype=np.int64)
        hits_all, n_rel_all = [], []
        for start in range(0, len(users), self.batch_size):
            batch = users[start : start + self.batch_size]
            scores = _writable(model.score(batch))
            if candidate_mask is not None:
                scores[:, ~candidate_mask] = -torch.inf
            if seen is not None:
                mask_seen(scores, seen, batch)
            relevant = _dense_rows(target_matrix, batch)
            if candidate_mask is not None:
                relevant &= candidate_mask
                n_relevant = relevant.sum(1)
            else:
                n_relevant = torch.from_numpy(np.diff(target_matrix.indptr)[batch].astype(np.int64))
            if all_known is not None:
                scores = _restrict_to_sample(scores, relevant, all_known, batch, self.sampled_negatives, generator)
            top = torch.topk(scores, max_k, dim=1).indices
            # an item with -inf (masked) score is never a hit, even when topk had to return it
            valid = torch.gather(scores, 1, top) > -torch.inf
            hits_all.append(torch.gather(relevant, 1, top) & valid)
            n_rel_all.append(n_relevant)
            topk[start : start + len(batch)] = top.numpy()
        hits, n_relevant = torch.cat(hits_all), torch.cat(n_rel_all)
        ks = [k for k in self.ks if k <= max_k]
        per_user = {
            self.metric_key(name, k): metric_functions.METRICS[name](hits, n_relevant, k).numpy()
            for name in self.metrics
            for k in ks
        }
        summary = {key: float(np.mean(v)) for key, v in per_user.items()}
        popularity = (popularity_from or (excluded[0] if excluded else target)).item_popularity()
        for k in self.ks:
            if k <= max_k:
                summary[self.metric_key("coverage", k)] = float(len(np.unique(topk[:, :k])) / target.n_items)
                summary[self.metric_key("popularity", k)] = float(popularity[topk[:, :k]].mean())
        return EvaluationResult(users, per_user, summary, topk, self.protocol)


def _writable(scores: torch.Tensor) -> torch.Tensor:
    """The score batch as float32 that may be masked in place (copied only when it is a view)."""
    scores = scores.float()
    if scores._base is not None or not scores.is_contiguous():
        scores = scores.clone()
    return scores


def _union_matrix(parts: Sequence[Interactions], like: Interactions) -> sp.csr_matrix | None:
    if not parts:
        return None
    for part in parts:
        if part.n_users != like.n_users or part.n_items != like.n_items:
            raise ValueError(
                f"parts disagree on shape: {part.source} is {part.n_users}x{part.n_items}, "
                f"target is {like.n_users}x{like.n_items}; they must come from one split"
            )
    total = parts[0].matrix
    for part in parts[1:]:
        total = total + part.matrix
    return total.tocsr()


def _dense_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> torch.Tensor:
    sub = matrix[rows]
    dense = torch.zeros((len(rows), matrix.shape[1]), dtype=torch.bool)
    row_ids = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    dense[torch.from_numpy(row_ids), torch.from_numpy(sub.indices.astype(np.int64))] = True
    return dense


def _candidate_mask(candidate_items, n_items: int) -> torch.Tensor | None:
    if candidate_items is None:
        return None
    mask = torch.zeros(n_items, dtype=torch.bool)
    mask[torch.as_tensor(np.asarray(candidate_items, dtype=np.int64))] = True
    return mask


def _restrict_to_sample(scores, relevant, all_known, batch, n_negatives, generator) -> torch.Tensor:
    """Keep the scores of the positives and of ``n_negatives`` random unknown items per user."""
    keys = torch.rand(scores.shape, generator=generator)
    known = _dense_rows(all_known, batch)
    keys[known] = 2.0  # never sampled as negatives
    keep = torch.zeros_like(known)
    n = min(n_negatives, scores.shape[1])
    negatives = torch.topk(-keys, n, dim=1).indices
    keep.scatter_(1, negatives, True)
    keep &= ~known
    keep |= relevant
    return torch.where(keep, scores, torch.full_like(scores, -torch.inf))
