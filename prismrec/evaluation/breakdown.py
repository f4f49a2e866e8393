"""Where a model's hits come from: recall over test items grouped by their training popularity.

Items are ``cold`` (no training interaction), ``tail`` or ``head`` (the most popular items
that together hold ``head_share`` of the training interactions). Content models should
shine on cold and tail items; this breakdown shows whether they do.
"""
from __future__ import annotations

import numpy as np

from prismrec.data.interactions import Interactions


def popularity_groups(train: Interactions, head_share: float = 0.5) -> np.ndarray:
    """Group label per item: 0 cold, 1 tail, 2 head (the fewest items covering ``head_share`` of train).

    Example:
        >>> from prismrec.data import IdMap, Interactions
        >>> train = Interactions(IdMap(range(3)), IdMap(range(4)), [0, 1, 2, 0], [0, 0, 0, 1])
        >>> popularity_groups(train).tolist()
        [2, 1, 0, 0]
    """
    popularity = train.item_popularity()
    groups = np.where(popularity > 0, 1, 0)
    order = np.argsort(-popularity, kind="stable")
    covered = np.cumsum(popularity[order]) / max(popularity.sum(), 1)
    n_head = int(np.searchsorted(covered, head_share) + 1) if popularity.sum() else 0
    groups[order[:n_head]] = 2
    groups[popularity == 0] = 0
    return groups


GROUP_NAMES = ("cold", "tail", "head")


def recall_by_popularity(topk: np.ndarray, users: np.ndarray, test: Interactions, train: Interactions,
                         k: int) -> dict[str, dict]:
    """Recall@k restricted to each group's test items: ``{group: {"recall": r, "users": n, "items": m}}``.

    A user counts in a group when their test part holds at least one of its items; the
    recall is the share of those items found in the user's top-``k``. One sparse pass over
    the users' test rows, no per-user loop.
    """
    groups = popularity_groups(train)
    rows = test.matrix[users]
    row_of_entry = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
    top = topk[:, :k]
    top_keys = np.repeat(np.arange(len(users), dtype=np.int64), top.shape[1]) * train.n_items + top.reshape(-1)
    found = np.isin(row_of_entry.astype(np.int64) * train.n_items + rows.indices, top_keys)
    entry_group = groups[rows.indices]
    test_groups = groups[test.item_index]
    out = {}
    for group, name in enumerate(GROUP_NAMES):
        mask = entry_group == group
        relevant = np.bincount(row_of_entry[mask], minlength=len(users))
        hits = np.bincount(row_of_entry[mask], weights=found[mask], minlength=len(users))
        counted = relevant > 0
        out[name] = {"recall": float(np.mean(hits[counted] / relevant[counted])) if counted.any() else None,
                     "users": int(counted.sum()), "test_interactions": int((test_groups == group).sum())}
    return out
