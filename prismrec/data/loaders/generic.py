"""Users' own data: interactions and items as CSV/TSV/Parquet, images in a folder.

See ``docs/data_formats.md`` for the format. Ids are read as text, so ``"007"``
stays ``"007"``. CSV line numbers in messages assume one row per line (line 1 is the
header); Parquet positions are 1-based rows.
"""
from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import Dataset, ItemCatalog
from prismrec.data.interactions import Interactions
from prismrec.data.loaders._common import (
    attach_catalog, build_interactions, check_image_paths, clean_strings, find_images, read_text, to_numbers, warn_rows)
from prismrec.data.splits import Split

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}


def read_table(path, *, encoding: str = "utf-8") -> tuple[pd.DataFrame, str]:
    """A table of strings (``None`` for empty cells) with a ``line`` column; returns ``(frame, unit)``.

    Example:
        >>> frame, unit = read_table("ratings.csv")  # doctest: +SKIP
    """
    path = Path(path)
    suffix = path.suffix.lower() if path.suffix != ".gz" else Path(path.stem).suffix.lower()
    if suffix in (".parquet", ".pq"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        frame = pd.read_parquet(path)
        frame = clean_strings(frame)
        return frame.assign(line=np.arange(1, len(frame) + 1)), "row"
    if suffix not in _SEPARATORS:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of "
                         f"{sorted([*_SEPARATORS, '.parquet', '.pq'])} (optionally .gz)")
    text = re.sub(r"(\r?\n\s*)+\Z", "\n", read_text(path, encoding))  # trailing blank lines are not rows
    try:
        frame = pd.read_csv(StringIO(text), sep=_SEPARATORS[suffix], dtype=str, keep_default_na=False,
                            skip_blank_lines=False)  # blank lines stay rows, so line numbers stay true
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty; expected a header line naming the columns (such as "
                         "user,item) and one row per line") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: could not parse the file as {suffix[1:].upper()}: {err}") from None
    frame = clean_strings(frame)
    return frame.assign(line=np.arange(2, len(frame) + 2)), "line"


def _times(values, lines, path, column: str, unit: str) -> np.ndarray:
    """Numbers as they are; otherwise ISO dates/times as seconds since 1970.

    A bad value is reported at its own line: the first value that is neither a number
    (when the column is numeric) nor a date (when it holds dates).
    """
    values = list(values)
    try:
        return to_numbers(values, lines, path, column, unit=unit)
    except ValueError as number_error:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", format="ISO8601", utc=True)
        if parsed.notna().sum() == 0:
            raise number_error from None
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            at = int(bad[0])
            raise ValueError(f"{path}, {unit} {lines[at]}: column {column!r} expected a number or an ISO date/time "
                             f"such as 2024-03-01 or 2024-03-01T12:00:00, found {values[at]!r}") from None
        return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


def read_interaction_table(path, *, user_col="user", item_col="item", time_col=None, rating_col=None,
                           encoding="utf-8") -> tuple[pd.DataFrame, str]:
    """Interaction rows ``line, user, item[, timestamp][, rating]``; rows without ids are counted skips."""
    frame, unit = read_table(path, encoding=encoding)
    wanted = [c for c in (user_col, item_col, time_col, rating_col) if c is not None]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {[c for c in frame.columns if c != 'line']}")
    no_id = (frame[user_col].isna() | frame[item_col].isna()).to_numpy()
    warn_rows(path, f"rows without a {user_col!r} or {item_col!r} value skipped", frame["line"][no_id], unit=unit)
    frame = frame[~no_id]
    lines = frame["line"].tolist()
    out = pd.DataFrame({"line": frame["line"].to_numpy(), "user": frame[user_col].to_numpy(),
                        "item": frame[item_col].to_numpy()})
    if time_col is not None:
        out["timestamp"] = _times(frame[time_col], lines, path, time_col, unit)
    if rating_col is not None:
        out["rating"] = to_numbers(frame[rating_col], lines, path, rating_col, unit=unit)
    return out, unit


def read_item_table(items_path, *, item_col="item", text_fields=None, image_col=None, image_dir=None,
                    encoding="utf-8") -> ItemCatalog:
    """Items file as a catalog. ``text_fields=None`` takes every column but the id and image ones.

    Relative image paths resolve against ``image_dir`` (else the items file's folder);
    missing files are recorded as ``None`` and counted in a warning.
    """
    frame, unit = read_table(items_path, encoding=encoding)
    columns = [c for c in frame.columns if c != "line"]
    text_fields = [c for c in columns if c not in (item_col, image_col)] if text_fields is None else list(text_fields)
    missing = [c for c in [item_col, *text_fields, *([image_col] if image_col else [])] if c not in columns]
    if missing:
        raise ValueError(f"{items_path}: missing column(s) {missing}; found {columns}")
    no_id = frame[item_col].isna().to_numpy()
    warn_rows(items_path, f"rows without an {item_col!r} value skipped", frame["line"][no_id], unit=unit)
    frame = frame[~no_id]
    repeated = frame[item_col].duplicated().to_numpy()
    warn_rows(items_path, "rows with a repeated item id skipped (the first is kept)", frame["line"][repeated], unit=unit)
    frame = frame[~repeated]
    media = {}
    if image_col is not None:
        base = Path(image_dir) if image_dir is not None else Path(items_path).parent
        paths = [None if p is None else str(base / p) for p in frame[image_col]]
        media["image"] = check_image_paths(frame[item_col], paths, items_path)
    return ItemCatalog(frame[item_col].to_numpy(dtype=object), text={f: frame[f].to_numpy() for f in text_fields},
                       media=media, source=str(items_path), lines=frame["line"].to_numpy())


def load_generic(interactions_path, items_path=None, image_dir=None, *, user_col: str = "user",
                 item_col: str = "item", time_col: str | None = None, rating_col: str | None = None,
                 rating_threshold: float | None = None, text_fields: list[str] | None = None,
                 image_col: str | None = None, encoding: str = "utf-8") -> Dataset:
    """Load your own data (format: ``docs/data_formats.md``).

    Without ``image_col``, images are found as ``<image_dir>/<item id>.(jpg|jpeg|png|webp)``.

    Example:
        >>> data = load_generic("ratings.csv", "items.csv", "images/", time_col="time",
        ...                     rating_col="stars", rating_threshold=4, text_fields=["title"])  # doctest: +SKIP
    """
    frame, unit = read_interaction_table(interactions_path, user_col=user_col, item_col=item_col,
                                         time_col=time_col, rating_col=rating_col, encoding=encoding)
    interactions, _ = build_interactions(frame, interactions_path, rating_threshold=rating_threshold, unit=unit)
    catalog = None
    if items_path is not None:
        catalog = read_item_table(items_path, item_col=item_col, text_fields=text_fields, image_col=image_col,
                                  image_dir=image_dir, encoding=encoding)
        catalog = attach_catalog(catalog, interactions.items, items_path)
    if image_dir is not None and image_col is None:
        base = catalog or ItemCatalog(interactions.items.raw_ids, source=str(image_dir))
        images = find_images(interactions.items.raw_ids, image_dir, interactions_path)
        catalog = ItemCatalog(base.item_ids, text=base.text, media={"image": images}, source=base.source,
                              lines=base.lines)
    return Dataset(interactions=interactions, catalog=catalog, name=Path(interactions_path).name.split(".")[0])


def _known_rows(frame: pd.DataFrame, train: Interactions, path, unit: str) -> pd.DataFrame:
    """Drop (and count) rows whose user or item is not in train, and pairs already in train."""
    unknown = ~(frame["user"].isin(train.users.raw_ids) & frame["item"].isin(train.items.raw_ids)).to_numpy()
    warn_rows(path, "rows with a user or item unknown to the training file skipped", frame["line"][unknown], unit=unit)
    frame = frame[~unknown]
    keys = train.users.lookup(frame["user"].tolist()) * train.n_items + train.items.lookup(frame["item"].tolist())
    seen = np.isin(keys, train.user_index * train.n_items + train.item_index)
    warn_rows(path, "rows whose (user, item) pair is already in the training file skipped",
              frame["line"][seen], unit=unit)
    return frame[~seen]


def load_split_files(train_path, valid_path, test_path, *, user_col: str = "user", item_col: str = "item",
                     time_col: str | None = None, rating_col: str | None = None,
                     rating_threshold: float | None = None, encoding: str = "utf-8") -> Split:
    """A split from your own three files; the training file defines the users and items.

    Valid/test rows with ids unknown to train, or pairs already in train, are counted
    skips with a warning naming the file.

    Example:
        >>> split = load_split_files("train.csv", "valid.csv", "test.csv", time_col="time")  # doctest: +SKIP
    """
    options = dict(user_col=user_col, item_col=item_col, time_col=time_col, rating_col=rating_col, encoding=encoding)
    frame, unit = read_interaction_table(train_path, **options)
    train, _ = build_interactions(frame, train_path, rating_threshold=rating_threshold, unit=unit)
    parts = []
    for path in (valid_path, test_path):
        frame, unit = read_interaction_table(path, **options)
        if rating_threshold is not None:
            frame = frame[frame["rating"] >= rating_threshold]
        frame = _known_rows(frame, train, path, unit)
        parts.append(build_interactions(frame, path, unit=unit, users=train.users, items=train.items)[0])
    return Split(train, parts[0], parts[1], strategy="user_files")
