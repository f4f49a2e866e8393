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


def write_own_catalogue(root: Path, *, n_users: int = 40, n_items: int = 30, seed: int = 0,
                        with_images: bool = False) -> Path:
    """A practitioner's own small data set in the generic format, under ``root/data``.

    Two communities of users (as the checkerboard) over items whose text says which
    community they belong to ("red ..." / "blue ..."), dates as ISO strings, and a config
    ``root/project/run.yaml`` whose paths are relative to its own folder. Returns the config.
    """
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = []
    for user in range(n_users):
        block = np.arange(n_items // 2) if user < n_users // 2 else np.arange(n_items // 2, n_items)
        chosen = block[rng.random(len(block)) < 0.6]
        chosen = chosen if len(chosen) >= 4 else block[:4]
        for day, item in enumerate(rng.permutation(chosen)):
            rows.append((f"u{user}", f"i{item:03d}", f"2024-01-{day % 28 + 1:02d}", 4))
    pd.DataFrame(rows, columns=["user_id", "item_id", "when", "stars"]).to_csv(data / "ratings.csv", index=False)
    items = [(f"i{i:03d}", f"{'red' if i < n_items // 2 else 'blue'} thing {i}",
              f"a {'red' if i < n_items // 2 else 'blue'} item for group {int(i >= n_items // 2)}")
             for i in range(n_items)]
    pd.DataFrame(items, columns=["item_id", "title", "description"]).to_csv(data / "items.csv", index=False)
    image_line = ""
    if with_images:
        from PIL import Image

        (data / "images").mkdir(exist_ok=True)
        for i in range(n_items):
            color = (220, 30, 30) if i < n_items // 2 else (30, 30, 220)
            Image.new("RGB", (16, 16), color).save(data / "images" / f"i{i:03d}.png")
        image_line = ", image_dir: ../data/images"
    project = root / "project"
    project.mkdir(exist_ok=True)
    config = project / "run.yaml"
    config.write_text(
        "name: own catalogue\n"
        "data: {loader: generic, path: ../data/ratings.csv, options: {user_col: user_id, item_col: item_id, "
        f"time_col: when, items_path: ../data/items.csv{image_line}}}}}\n"
        "split: {strategy: random_per_user, options: {ratios: [0.7, 0.1, 0.2], seed: 3}}\n"
        "feature_cache: cache\n"
        "evaluation: {ks: [5, 10], topk: 10}\n"
        "models: [{name: mostpop}, {name: bpr, params: {epochs: 10, factors: 8, learning_rate: 0.05}}]\n")
    return config


@pytest.fixture
def own_catalogue(tmp_path) -> Path:
    return write_own_catalogue(tmp_path)
