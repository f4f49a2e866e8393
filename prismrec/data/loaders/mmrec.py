"""MMRec folders: ``<name>.inter`` plus optional ``image_feat.npy`` / ``text_feat.npy``.

``<name>.inter`` is tab-separated with a header naming ``userID``, ``itemID``,
``x_label`` (0 train, 1 valid, 2 test) and optionally ``rating`` and ``timestamp``.
Item ids are 0..n-1 and row i of each feature file belongs to itemID i.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import Dataset
from prismrec.data.interactions import IdMap, Interactions
from prismrec.data.loaders._common import build_interactions, split_lines, to_numbers, warn_ids
from prismrec.data.splits import Split

FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}
_COLUMNS = {"userID": "user", "itemID": "item", "rating": "rating", "timestamp": "timestamp", "x_label": "x_label"}


def find_inter_file(folder, dataset_name: str | None = None) -> Path:
    """``<folder>/<dataset_name>.inter``, or the only ``.inter`` file in ``folder``."""
    folder = Path(folder)
    if dataset_name is not None:
        path = folder / f"{dataset_name}.inter"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: MMRec interaction file not found")
        return path
    found = sorted(folder.glob("*.inter"))
    if len(found) != 1:
        raise FileNotFoundError(f"{folder}: expected exactly one *.inter file, found "
                                f"{[p.name for p in found] or 'none'}; pass dataset_name=...")
    return found[0]


def _read_inter(path: Path) -> tuple[Interactions, pd.DataFrame]:
    rows, lines = split_lines(path, "\t", None)
    header, rows, lines = rows[0] if rows else [], rows[1:], lines[1:]
    missing = [c for c in ("userID", "itemID", "x_label") if c not in header]
    if missing:
        raise ValueError(f"{path}, line 1: expected a header with userID, itemID, x_label; missing {missing}, "
                         f"found {header}")
    for fields, line in zip(rows, lines):
        if len(fields) != len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} tab-separated fields, found {len(fields)}")
    raw = pd.DataFrame(rows, columns=header, dtype=object)
    frame = pd.DataFrame({"line": np.asarray(lines, dtype=np.int64), "user": raw["userID"]})
    items = to_numbers(raw["itemID"], lines, path, "itemID", integer=True).astype(np.int64)
    if len(items) and items.min() < 0:
        raise ValueError(f"{path}, line {lines[int(np.argmin(items))]}: itemID expected >= 0, found {items.min()}")
    frame["item"] = items.astype(str)
    for column in ("rating", "timestamp", "x_label"):
        if column in header:
            frame[column] = to_numbers(raw[column], lines, path, column, integer=column == "x_label")
    bad = ~frame["x_label"].isin([0, 1, 2]).to_numpy()
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {lines[at]}: x_label expected 0, 1 or 2, found {raw['x_label'][at]!r}")
    n_items = int(items.max()) + 1 if len(items) else 0
    item_map = IdMap([str(i) for i in range(n_items)])
    unused = sorted(set(range(n_items)) - set(items.tolist()))
    warn_ids(path, "item ids in 0..n-1 have no interaction (kept so feature rows line up)", unused)
    return build_interactions(frame, path, items=item_map)


def _features(folder: Path, inter: Path, n_items: int) -> dict[str, np.ndarray]:
    features = {}
    for name, file_name in FEATURE_FILES.items():
        path = folder / file_name
        if not path.is_file():
            continue
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array [n_items, dim], found shape {array.shape}")
        if array.shape[0] != n_items:
            raise ValueError(f"{path}: expected {n_items} rows (itemID 0..{n_items - 1} in {inter.name}), "
                             f"found {array.shape[0]}; row i must hold the features of itemID i")
        features[name] = array.astype(np.float32, copy=False)
    return features


def load_mmrec(folder, dataset_name: str | None = None) -> Dataset:
    """Load an MMRec folder; ``item_features`` holds ``"image"``/``"text"`` when the files exist.

    The item id map lists ``"0".."n-1"`` in numeric order, so feature row i is item index i.

    Example:
        >>> data = load_mmrec("data/baby")  # doctest: +SKIP
        >>> data.item_features["image"].shape  # doctest: +SKIP
        (7050, 4096)
    """
    folder = Path(folder)
    inter = find_inter_file(folder, dataset_name)
    interactions, _ = _read_inter(inter)
    features = _features(folder, inter, interactions.n_items)
    return Dataset(interactions=interactions, item_features=features, name=inter.stem)


def mmrec_split(folder, dataset_name: str | None = None) -> Split:
    """The train/valid/test split fixed by the ``x_label`` column (0/1/2).

    Example:
        >>> split = mmrec_split("data/baby")  # doctest: +SKIP
    """
    interactions, frame = _read_inter(find_inter_file(folder, dataset_name))
    labels = frame["x_label"].to_numpy()
    parts = [interactions.subset(labels == label) for label in (0, 1, 2)]
    return Split(*parts, strategy="mmrec_x_label")
