"""Per-user item sequences in time order, for sequential models (SASRec, the foundation model)."""
from __future__ import annotations

import numpy as np

from prismrec.data.interactions import Interactions


def user_sequences(*parts: Interactions) -> list[np.ndarray]:
    """Item indices of every user (index order), oldest first, over the given parts.

    Order follows timestamps, ties (and data without timestamps) the row order, like
    :func:`prismrec.data.splits.leave_one_out`; so ``user_sequences(train, valid)`` is the
    history a leave-one-out test item follows. Users without interactions get an empty array.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user": ["a", "a", "b"], "item": ["x", "y", "x"], "t": [2, 1, 0]})
        >>> data = Interactions.from_frame(frame, time_col="t")
        >>> [s.tolist() for s in user_sequences(data)]
        [[1, 0], [0]]
    """
    if not parts:
        raise ValueError("user_sequences needs at least one Interactions part")
    n_users = parts[0].n_users
    for part in parts:
        if part.n_users != n_users or part.n_items != parts[0].n_items:
            raise ValueError(f"{part.source}: parts must share one id map ({n_users} users expected)")
    users = np.concatenate([p.user_index for p in parts])
    items = np.concatenate([p.item_index for p in parts])
    if all(p.timestamps is not None for p in parts):
        times = np.concatenate([p.timestamps for p in parts])
    else:
        times = np.zeros(len(users))
    order = np.lexsort((np.arange(len(users)), times, users))
    counts = np.bincount(users, minlength=n_users)
    return np.split(items[order], np.cumsum(counts)[:-1])
