"""RecBole atomic files (``<name>.inter``, ``<name>.item``) and the ml-100k copy inside ``recbole``.

Atomic files are tab-separated with a typed header, e.g.
``user_id:token	item_id:token	rating:float	timestamp:float``. Types are ``token``,
``token_seq`` (space-separated tokens), ``float`` and ``float_seq``.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import Dataset, ItemCatalog
from prismrec.data.loaders._common import attach_catalog, build_interactions, split_lines, to_numbers

_TYPES = ("token", "token_seq", "float", "float_seq")
# RecBole's ml-100k field names -> PrismRec catalog names; token_seq genres become comma-separated
_ITEM_FIELD_NAMES = {"movie_title": "title", "release_year": "year", "class": "genres"}
_INTER_FIELDS = {"user_id": "user", "item_id": "item", "rating": "rating", "timestamp": "timestamp"}
RECBOLE_INSTALL = "pip install --no-deps recbole==1.2.1"


def read_atomic(path) -> tuple[pd.DataFrame, dict[str, str], list[int]]:
    """Read one atomic file into strings: ``(frame, {field: type}, line_numbers)``."""
    rows, lines = split_lines(path, "\t", None)
    if not rows:
        raise ValueError(f"{path}, line 1: expected a header like 'user_id:token', found an empty file")
    header, rows, lines = rows[0], rows[1:], lines[1:]
    types = {}
    for column in header:
        name, _, kind = column.partition(":")
        if kind not in _TYPES:
            raise ValueError(f"{path}, line 1: header field {column!r} expected 'name:type' with type in {_TYPES}")
        types[name] = kind
    for fields, line in zip(rows, lines):
        if len(fields) != len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} tab-separated fields "
                             f"({', '.join(header)}), found {len(fields)}")
    frame = pd.DataFrame(rows, columns=list(types), dtype=object)
    return frame, types, lines


def _interactions_frame(path, *, rating_threshold):
    frame, types, lines = read_atomic(path)
    missing = [f for f in ("user_id", "item_id") if f not in types]
    if missing:
        raise ValueError(f"{path}, line 1: expected fields user_id and item_id, missing {missing}; found {list(types)}")
    out = pd.DataFrame({"line": np.asarray(lines, dtype=np.int64)})
    for field, name in _INTER_FIELDS.items():
        if field in types:
            values = frame[field].to_numpy()
            out[name] = values if name in ("user", "item") else to_numbers(values, lines, path, field)
    return build_interactions(out, path, rating_threshold=rating_threshold)[0]


def _catalog(path) -> ItemCatalog:
    frame, types, _ = read_atomic(path)
    if "item_id" not in types:
        raise ValueError(f"{path}, line 1: expected an item_id field; found {list(types)}")
    text = {}
    for field, kind in types.items():
        if field == "item_id" or kind not in ("token", "token_seq"):
            continue
        name = _ITEM_FIELD_NAMES.get(field, field)
        values = frame[field]
        if name == "genres" and kind == "token_seq":
            values = values.map(lambda v: ", ".join(v.split()))
        text[name] = values.to_numpy(dtype=object)
    return ItemCatalog(frame["item_id"].to_numpy(dtype=object), text=text, source=str(path))


def load_atomic_files(folder, dataset_name: str, *, rating_threshold: float | None = None) -> Dataset:
    """Load ``<folder>/<dataset_name>.inter`` and, when present, ``<dataset_name>.item``.

    Token and token_seq item fields become catalog text fields (ml-100k's
    ``movie_title``/``release_year``/``class`` are renamed ``title``/``year``/``genres``).

    Example:
        >>> data = load_atomic_files("dataset/ml-1m", "ml-1m")  # doctest: +SKIP
    """
    folder = Path(folder)
    inter = folder / f"{dataset_name}.inter"
    interactions = _interactions_frame(inter, rating_threshold=rating_threshold)
    catalog = None
    if (folder / f"{dataset_name}.item").is_file():
        catalog = attach_catalog(_catalog(folder / f"{dataset_name}.item"), interactions.items,
                                 folder / f"{dataset_name}.item")
    return Dataset(interactions=interactions, catalog=catalog, name=dataset_name)


def load_recbole_ml100k(*, rating_threshold: float | None = None) -> Dataset:
    """MovieLens-100k as shipped inside the installed ``recbole`` package (no download).

    Catalog text fields: ``title``, ``year``, ``genres``.

    Example:
        >>> data = load_recbole_ml100k()  # doctest: +SKIP
        >>> data.interactions.n_users, data.interactions.n_items, len(data.interactions)  # doctest: +SKIP
        (943, 1682, 100000)
    """
    if importlib.util.find_spec("recbole") is None:
        raise ModuleNotFoundError(
            f"load_recbole_ml100k reads the MovieLens-100k copy inside the recbole package, which is not "
            f"installed; install it with: {RECBOLE_INSTALL}")
    resource = importlib.resources.files("recbole") / "dataset_example" / "ml-100k"
    with importlib.resources.as_file(resource) as folder:
        if not (Path(folder) / "ml-100k.inter").is_file():
            raise FileNotFoundError(f"{folder}: ml-100k.inter is missing from the installed recbole package; "
                                    f"reinstall it with: {RECBOLE_INSTALL}")
        data = load_atomic_files(folder, "ml-100k", rating_threshold=rating_threshold)
    data.name = "ml-100k"
    return data
