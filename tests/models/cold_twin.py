"""The cold-twin check shared by the content models' tests.

On the checkerboard, item ``cold`` never occurs in training, and its content is a copy
of the most popular block-0 item. A content model must rank it among block-0 users' best
unseen items, and not among block-1 users' best ones.
"""
from __future__ import annotations

import numpy as np

from conftest import block_of_items, make_checkerboard

N_USERS, N_ITEMS = 60, 40


def cold_twin_data(dim: int = 8, noise: float = 0.2, seed: int = 0):
    """``(train, features, cold, popular)``: block-structured features, ``cold`` a copy of ``popular``."""
    data = make_checkerboard(N_USERS, N_ITEMS)
    popular = int(np.argmax(data.item_popularity()[: N_ITEMS // 2]))
    cold = 0 if popular != 0 else 1
    train = data.subset(data.item_index != cold)
    rng = np.random.default_rng(seed)
    features = rng.normal(0.0, noise, size=(N_ITEMS, dim)).astype(np.float32)
    features[np.arange(N_ITEMS), block_of_items(N_ITEMS)] += 1.0
    features[cold] = features[popular]
    return train, features, cold, popular


def cold_item_ranks(model, train, cold: int) -> np.ndarray:
    """Rank (0 = best) of ``cold`` among each user's unseen items, for every user."""
    items, _ = model.recommend(np.arange(N_USERS), k=N_ITEMS, exclude=train)
    return np.array([list(row).index(cold) for row in items])


def assert_cold_twin_ranks_high(model, train, cold: int, *, share: float = 0.9) -> np.ndarray:
    """Block-0 users rank the cold twin above every block-1 item, and block-1 users below
    all their own unseen items (each for at least ``share`` of the users).

    Without content the cold item ranks last for everyone (it is only ever a negative).
    Returns the ranks.
    """
    ranks = cold_item_ranks(model, train, cold)
    blocks = block_of_items(N_ITEMS)
    own_unseen = np.array([np.sum(blocks == int(user >= N_USERS // 2)) - len(train.matrix[user].indices)
                           for user in range(N_USERS)])
    own_unseen[: N_USERS // 2] -= 1  # block-0 users: the cold item is one of their own unseen items
    half = N_USERS // 2
    assert np.mean(ranks[:half] <= own_unseen[:half]) >= share, f"block-0 users: ranks {ranks[:half].tolist()}"
    assert np.mean(ranks[half:] >= own_unseen[half:]) >= share, f"block-1 users: ranks {ranks[half:].tolist()}"
    return ranks
