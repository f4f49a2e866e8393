"""One batched evaluator for every model: full ranking over all items, or sampled.

Scores come from ``model.score(users)`` in batches; items the user already has in the
``exclude`` parts (train, and at test time valid) are set to ``-inf``; the top-K lists
are compared with the target part through pure metric functions.

The protocol string of every result says what was computed: over which items the ranking
ran (all items, or a candidate set such as the cold test items), and whether negatives were
sampled. A cut-off larger than the rankable items is an error, never a silently missing
metric; a sample as large as the catalogue is labelled full ranking, because it is.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from prismrec.data.interactions import Interactions
from prismrec.evaluation import metrics as metric_functions
from prismrec.models.base import mask_seen
from prismrec.threads import thread_budget


@dataclass(eq=False)
class EvaluationResult:
    """Per-user metric vectors, their means, and the top-K lists (item indices)."""

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    summary: dict[str, float]
    topk: np.ndarray
    protocol: str = "full ranking"
    extra: dict = field(default_factory=dict)
    topk_scores: np.ndarray | None = None

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


class EvaluationNotice(UserWarning):
    """The evaluation computed something other than what was literally asked (and says what)."""


def check_cutoffs(ks, where: str = "ks") -> list[int]:
    """``ks`` as sorted unique positive ints; anything else is a ``ValueError`` naming ``where``.

    Example:
        >>> check_cutoffs([20, 10, 10])
        [10, 20]
    """
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence) or not ks:
        raise ValueError(f"{where} must be a non-empty list of positive integers such as [10, 20], got {ks!r}")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"{where} must be a non-empty list of positive integers such as [10, 20]; "
                             f"found {k!r}")
    return sorted(set(int(k) for k in ks))


def check_sampled_negatives(value, where: str = "sampled_negatives") -> int | None:
    """``None`` (full ranking) or a positive int; anything else is a ``ValueError`` naming ``where``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where} must be a positive number of sampled negatives per user (e.g. 99), got "
                         f"{value!r}; leave it unset for full ranking")
    return int(value)


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
        self.ks = check_cutoffs(list(ks) if isinstance(ks, (tuple, range)) else ks)
        unknown = [m for m in metrics if m not in metric_functions.METRICS]
        if unknown:
            raise KeyError(f"unknown metric(s) {unknown}; choose from {sorted(metric_functions.METRICS)}")
        self.metrics = tuple(metrics)
        self.batch_size = batch_size
        self.sampled_negatives = check_sampled_negatives(sampled_negatives)
        self.seed = seed

    @property
    def protocol(self) -> str:
        """The protocol over all items (see :meth:`protocol_for` for a candidate set)."""
        if self.sampled_negatives is None:
            return "full ranking"
        return f"sampled: positives + {self.sampled_negatives} sampled negatives"

    def protocol_for(self, n_rankable: int, candidates: str | None = None) -> str:
        """What is computed when ``n_rankable`` items can be ranked (``candidates`` names a restricted set).

        Example:
            >>> Evaluator().protocol_for(1682)
            'full ranking over all 1682 items'
            >>> Evaluator(sampled_negatives=99).protocol_for(336, "cold test items")
            'sampled: positives + 99 sampled negatives per user, drawn from the 336 cold test items'
        """
        where = f"the {n_rankable} {candidates}" if candidates else f"all {n_rankable} items"
        if self._sampling(n_rankable) is None:
            return f"full ranking over {where}"
        return f"sampled: positives + {self.sampled_negatives} sampled negatives per user, drawn from {where}"

    def _sampling(self, n_rankable: int) -> int | None:
        """The number of negatives actually sampled: ``None`` when the sample would hold every item."""
        if self.sampled_negatives is None or self.sampled_negatives >= n_rankable - 1:
            return None
        return self.sampled_negatives

    def metric_key(self, name: str, k: int, n_rankable: int | None = None) -> str:
        """``ndcg@10`` in full ranking, ``ndcg@10/sampled99`` in sampled mode."""
        sampled = self.sampled_negatives if n_rankable is None else self._sampling(n_rankable)
        suffix = "" if sampled is None else f"/sampled{sampled}"
        return f"{name}@{k}{suffix}"

    def check_rankable(self, n_rankable: int, candidates: str | None = None) -> None:
        """Raise a ``ValueError`` when a cut-off exceeds the items that can be ranked; notice a full sample."""
        where = f"the {n_rankable} {candidates}" if candidates else f"the catalogue's {n_rankable} items"
        too_big = [k for k in self.ks if k > n_rankable]
        if too_big:
            raise ValueError(f"cut-off k={', '.join(map(str, too_big))} is larger than {where}; use cut-offs of at most "
                             f"{n_rankable} (asked for ks={self.ks})")
        if self.sampled_negatives is not None and self._sampling(n_rankable) is None:
            warnings.warn(f"sampled_negatives={self.sampled_negatives} is not below {where}, so every item is "
                          "ranked: this is full ranking and is labelled so", EvaluationNotice, stacklevel=3)

    @torch.no_grad()
    @thread_budget()  # the configured count, else the free CPUs (see prismrec.threads)
    def evaluate(
        self,
        model,
        target: Interactions,
        exclude: Interactions | Sequence[Interactions] = (),
        *,
        popularity_from: Interactions | None = None,
        candidate_items: np.ndarray | None = None,
        candidates_label: str = "candidate items",
        users: np.ndarray | None = None,
    ) -> EvaluationResult:
        """Evaluate ``model`` on users with at least one interaction in ``target``.

        ``exclude``: parts whose items are masked (train; valid too at test time).
        ``candidate_items``: restrict the ranking to these items (cold-start evaluation);
        ``candidates_label`` names them in the protocol string (e.g. ``"cold test items"``).
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
        candidate_mask = _candidate_mask(candidate_items, target.n_items)
        n_rankable = target.n_items if candidate_mask is None else int(candidate_mask.sum())
        label = candidates_label if candidate_mask is not None else None
        self.check_rankable(n_rankable, label)
        max_k = max(self.ks)
        n_negatives = self._sampling(n_rankable)
        all_known = _union_matrix([*excluded, target], target) if n_negatives else None

        generator = torch.Generator().manual_seed(self.seed)
        # ties are broken by a seeded random order of the items, never by item index: index order
        # often carries information (ids assigned by release date or popularity)
        tie_order = torch.randperm(target.n_items, generator=torch.Generator().manual_seed(self.seed + 1))
        topk = np.empty((len(users), max_k), dtype=np.int64)
        topk_scores = np.empty((len(users), max_k), dtype=np.float32)
        hits_all, n_rel_all = [], []
        for start in range(0, len(users), self.batch_size):
            batch = users[start : start + self.batch_size]
            scores = _writable(model.score(batch))
            _raise_on_nan_scores(scores, model, batch)
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
                scores = _restrict_to_sample(scores, relevant, all_known, batch, n_negatives, generator,
                                             candidate_mask)
            top_values, top = torch.topk(scores[:, tie_order], max_k, dim=1, sorted=True)
            top = tie_order[top]
            # an item with -inf (masked) score is never a hit, even when topk had to return it
            valid = torch.gather(scores, 1, top) > -torch.inf
            hits_all.append(torch.gather(relevant, 1, top) & valid)
            n_rel_all.append(n_relevant)
            topk[start : start + len(batch)] = top.numpy()
            topk_scores[start : start + len(batch)] = top_values.numpy()
        hits, n_relevant = torch.cat(hits_all), torch.cat(n_rel_all)
        key = lambda name, k: self.metric_key(name, k, n_rankable)  # noqa: E731
        per_user = {key(name, k): metric_functions.METRICS[name](hits, n_relevant, k).numpy()
                    for name in self.metrics for k in self.ks}
        summary = {name: float(np.mean(v)) for name, v in per_user.items()}
        popularity = (popularity_from or (excluded[0] if excluded else target)).item_popularity()
        for k in self.ks:
            summary[key("coverage", k)] = float(len(np.unique(topk[:, :k])) / n_rankable)
            summary[key("popularity", k)] = float(popularity[topk[:, :k]].mean())
        return EvaluationResult(users, per_user, summary, topk, self.protocol_for(n_rankable, label),
                                topk_scores=topk_scores)


def _raise_on_nan_scores(scores: torch.Tensor, model, batch: np.ndarray) -> None:
    """NaN scores are an error: ``torch.topk`` ranks NaN above every number, so they would silently
    fill the top-K lists (as MMRec's all-zero feature rows do through its cosine kNN graph)."""
    nan = torch.isnan(scores)
    if bool(nan.any()):
        rows, items = np.nonzero(nan.numpy())
        raise ValueError(f"{type(model).__name__}.score returned {len(rows)} NaN scores for {len(np.unique(rows))} of "
                         f"{len(batch)} users (first: user {int(batch[rows[0]])}, item {int(items[0])}); NaN would rank "
                         "first in the top-K lists. Check the model's item features for all-zero or non-finite rows")


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


def _restrict_to_sample(scores, relevant, all_known, batch, n_negatives, generator,
                                             candidate_mask) -> torch.Tensor:
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
