"""P5-style sequential data: ``sequential_data.txt`` plus ``datamaps.json``.

``sequential_data.txt`` holds one line per user, ``user_id item_id item_id ...`` in
time order; ``datamaps.json`` maps P5 ids to Amazon ids (``id2item``: id -> ASIN).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import Dataset, ItemCatalog
from prismrec.data.loaders._common import attach_catalog, build_interactions, split_lines, to_numbers, warn_rows


def read_sequences(path) -> pd.DataFrame:
    """One row per (user, item) with ``timestamp`` = position in the user's sequence (0, 1, ...)."""
    rows, lines = split_lines(path, None, None)
    lengths = np.fromiter((len(tokens) for tokens in rows), dtype=np.int64, count=len(rows))
    token_lines = np.repeat(np.asarray(lines, dtype=np.int64), lengths)
    tokens = [token for fields in rows for token in fields]
    numbers = to_numbers(tokens, token_lines, path, "user/item id", integer=True).astype(np.int64).astype(str)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    is_user = np.zeros(len(tokens), dtype=bool)
    is_user[first] = True
    users, seen = numbers[first], {}
    for user, line in zip(users, lines):
        if user in seen:
            raise ValueError(f"{path}, line {line}: expected one line per user, found user {user} again "
                             f"(first on line {seen[user]})")
        seen[user] = line
    empty = np.asarray(lines)[lengths == 1]
    positions = np.arange(len(tokens)) - np.repeat(first, lengths) - 1
    users, items = np.repeat(users, lengths)[~is_user], numbers[~is_user]
    positions, line_of = positions[~is_user], token_lines[~is_user]
    warn_rows(path, "users with an empty item sequence skipped", empty)
    return pd.DataFrame({"line": line_of, "user": users, "item": items, "timestamp": positions.astype(np.float64)})


def _catalog(path) -> ItemCatalog:
    try:
        maps = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {err.lineno}: expected JSON, {err.msg}") from None
    if not isinstance(maps, dict) or not isinstance(maps.get("id2item"), dict):
        raise ValueError(f"{path}: expected a JSON object with an 'id2item' mapping (P5 id -> ASIN)")
    id2item = maps["id2item"]
    return ItemCatalog(list(id2item), text={"asin": list(id2item.values())}, source=str(path))


def load_p5_sequences(folder) -> Dataset:
    """Load a P5 folder; the P5 numeric ids are the raw ids, ASINs are the catalog field ``asin``.

    Timestamps are positions within each user's sequence, so ``leave_one_out`` and
    temporal splits follow sequence order.

    Example:
        >>> data = load_p5_sequences("amazon-p5/beauty")  # doctest: +SKIP
        >>> data.catalog.text["asin"][0]  # doctest: +SKIP
        'B004756YJA'
    """
    folder = Path(folder)
    path = folder / "sequential_data.txt"
    interactions, _ = build_interactions(read_sequences(path), path)
    catalog = None
    if (folder / "datamaps.json").is_file():
        catalog = attach_catalog(_catalog(folder / "datamaps.json"), interactions.items, folder / "datamaps.json")
    return Dataset(interactions=interactions, catalog=catalog, name=folder.name or "p5")
