"""Shared fixtures: tiny synthetic data sets with known answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prismrec.data import Interactions
from prismrec.data.splits import per_user_ratio

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing")
    return path


def make_checkerboard(n_users: int = 60, n_items: int = 40, density: float = 0.6, seed: int = 0) -> Interactions:
    """Two communities: users 0..n/2-1 like only items 0..m/2-1, the others only the rest.

    A model that learns anything collaborative ranks a user's unseen own-block items above
    every other-block item; that is the known best ranking the contract tests check.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        block = user < n_users // 2
        items = np.arange(n_items // 2) if block else np.arange(n_items // 2, n_items)
        chosen = items[rng.random(len(items)) < density]
        if len(chosen) < 4:
            chosen = items[:4]
        rows += [(f"u{user}", f"i{item}", float(t)) for t, item in enumerate(rng.permutation(chosen))]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    users = [f"u{u}" for u in range(n_users)]
    items = [f"i{i}" for i in range(n_items)]
    from prismrec.data import IdMap

    return Interactions.from_frame(frame, time_col="timestamp", users=IdMap(users), items=IdMap(items),
                                   source="checkerboard")


def block_of_items(n_items: int = 40) -> np.ndarray:
    """Block label (0 or 1) of each checkerboard item index."""
    return (np.arange(n_items) >= n_items // 2).astype(int)


@pytest.fixture
def checkerboard() -> Interactions:
    return make_checkerboard()


@pytest.fixture
def checkerboard_split(checkerboard):
    return per_user_ratio(checkerboard, (0.7, 0.1, 0.2), seed=0)
