"""Shared helpers for the loaders: strict line parsing, counted skips, id maps.

Every loader follows two rules. Input that would make the result wrong raises a
``ValueError`` naming the file, the 1-based line and what was expected versus found.
Rows that are dropped or skipped on purpose are counted and reported with one
:class:`DataWarning` per file (count plus the first few line numbers), never silently.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import ItemCatalog
from prismrec.data.interactions import IdMap, Interactions

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
_SHOW = 5  # how many line numbers or ids a warning names


class DataWarning(UserWarning):
    """Rows or items were skipped, merged or found missing while loading a data set."""


def _first(values, show: int = _SHOW) -> str:
    values = list(values)
    text = ", ".join(str(v) for v in values[:show])
    return text + (", ..." if len(values) > show else "")


def warn_rows(source, what: str, lines, *, unit: str = "line") -> None:
    """Emit one warning: ``"<source>: <count> <what>; first <unit>s: 3, 7"``."""
    lines = list(lines)
    if lines:
        warnings.warn(f"{source}: {len(lines)} {what}; first {unit}s: {_first(lines)}", DataWarning, stacklevel=3)


def warn_ids(source, what: str, ids) -> None:
    """Emit one warning naming a count and the first few ids (or file names)."""
    ids = list(ids)
    if ids:
        warnings.warn(f"{source}: {len(ids)} {what}: {_first(ids)}", DataWarning, stacklevel=3)


def decode_error(path, data: bytes, err: UnicodeDecodeError, encoding: str) -> ValueError:
    """A ``ValueError`` naming the file, the line of the bad byte and the ``encoding=`` option."""
    line = data.count(b"\n", 0, err.start) + 1
    return ValueError(
        f"{path}, line {line}: the file is not valid {encoding} (byte 0x{data[err.start]:02x} at offset "
        f"{err.start}); if it uses another encoding, pass encoding=..., e.g. encoding='latin-1' or 'cp1252'"
    )


def read_text(path, encoding: str | None = "utf-8") -> str:
    """Whole file as text (``.gz`` is decompressed). ``encoding=None``: UTF-8, else Latin-1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if encoding is None:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise decode_error(path, data, err, encoding) from None


def split_lines(path, sep: str | None, n_fields: int | None, *, encoding: str | None = "utf-8",
                skip_header: bool = False) -> tuple[list[list[str]], list[int]]:
    """Split every non-blank line into fields; returns ``(rows, line_numbers)``.

    A line with a field count other than ``n_fields`` raises ``ValueError``. Blank
    lines inside the file are skipped and counted in a warning (trailing ones are ignored).

    Example:
        >>> rows, lines = split_lines("u.data", "\\t", 4)  # doctest: +SKIP
    """
    rows, numbers, blank = [], [], []
    text_lines = read_text(path, encoding).splitlines()
    while text_lines and not text_lines[-1].strip():  # trailing blank lines are not rows
        text_lines.pop()
    for number, line in enumerate(text_lines, start=1):
        if skip_header and number == 1:
            continue
        if not line.strip():
            blank.append(number)
            continue
        fields = line.split(sep)
        if n_fields is not None and len(fields) != n_fields:
            raise ValueError(
                f"{path}, line {number}: expected {n_fields} {'whitespace' if sep is None else repr(sep)}"
                f"-separated fields, found {len(fields)}: {line[:80]!r}"
            )
        rows.append(fields)
        numbers.append(number)
    warn_rows(path, "blank lines skipped", blank)
    return rows, numbers


def to_numbers(values, lines, source, column: str, *, integer: bool = False, unit: str = "line") -> np.ndarray:
    """Parse a column as numbers; the first bad value raises ``ValueError`` with its line."""
    values = list(values)
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if integer:
        bad |= np.isfinite(numbers) & (numbers != np.round(numbers))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{source}, {unit} {lines[at]}: column {column!r} expected {kind}, found {values[at]!r}")
    return numbers


def clean_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a stripped ``str`` in an object column, ``None`` for empty or missing cells."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        text = column.astype(str).str.strip().astype(object)
        text[column.isna().to_numpy() | (text == "").to_numpy()] = None
        out[name] = text
    return pd.DataFrame(out, index=frame.index)


def ordered_ids(values) -> list[str]:
    """Unique ids as str: numeric order when every id is an integer, else first-seen order."""
    unique = pd.unique(pd.Series(values, dtype=object).astype(str))
    try:
        return [str(v) for v in sorted(unique, key=int)]
    except ValueError:
        return [str(v) for v in unique]


def build_interactions(frame: pd.DataFrame, source, *, rating_threshold: float | None = None,
                       line_col: str = "line", unit: str = "line", users: IdMap | None = None,
                       items: IdMap | None = None) -> tuple[Interactions, pd.DataFrame]:
    """Interactions from a frame with ``user, item[, timestamp][, rating]`` and a line column.

    Rows below ``rating_threshold`` are dropped; users and items left with no
    interaction are not in the id maps, and that is reported. Repeated (user, item)
    rows keep the latest (by timestamp, then file order) and are counted. Returns the
    interactions and the kept rows in interaction order.
    """
    frame = frame.assign(user=frame["user"].astype(str), item=frame["item"].astype(str))
    has_time, has_rating = "timestamp" in frame, "rating" in frame
    if rating_threshold is not None:
        if not has_rating:
            raise ValueError(f"{source}: rating_threshold={rating_threshold} needs ratings, and this file has none")
        kept = frame[frame["rating"] >= rating_threshold]
        lost_users = ordered_ids(sorted(set(frame["user"]) - set(kept["user"])))
        lost_items = ordered_ids(sorted(set(frame["item"]) - set(kept["item"])))
        warn_ids(source, f"users have no rating >= {rating_threshold} and are left out", lost_users)
        warn_ids(source, f"items have no rating >= {rating_threshold} and are left out", lost_items)
        frame = kept
    if has_time:
        frame = frame.sort_values("timestamp", kind="stable")
    repeated = frame.duplicated(["user", "item"], keep="last").to_numpy()
    warn_rows(source, "repeated (user, item) rows merged (the latest is kept)",
              sorted(frame.loc[repeated, line_col]), unit=unit)
    frame = frame[~repeated].sort_values(line_col, kind="stable")
    users = IdMap(ordered_ids(frame["user"])) if users is None else users
    items = IdMap(ordered_ids(frame["item"])) if items is None else items
    data = Interactions.from_frame(frame, time_col="timestamp" if has_time else None,
                                   rating_col="rating" if has_rating else None, users=users, items=items,
                                   deduplicate=False, source=str(source))
    return data, frame


def attach_catalog(catalog: ItemCatalog, items: IdMap, source) -> ItemCatalog:
    """Align ``catalog`` to ``items``, reporting items on only one side."""
    in_catalog = set(catalog.item_ids)
    warn_ids(source, "interacted items have no catalog entry (their content is missing)",
             [i for i in items.raw_ids if i not in in_catalog])
    warn_ids(source, "catalog items have no interaction and are left out",
             [i for i in catalog.item_ids if i not in items])
    return catalog.aligned_to(items)


def find_images(item_ids, image_dir, source) -> list[str | None]:
    """``<image_dir>/<item_id>.(jpg|jpeg|png|webp)`` per item, ``None`` (counted) when absent."""
    image_dir = Path(image_dir).absolute()  # paths stay valid when the working folder changes
    present = {}
    for path in image_dir.iterdir() if image_dir.is_dir() else []:
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            present.setdefault(path.stem, str(path))
    found = [present.get(str(item)) for item in item_ids]
    warn_ids(f"{source} (images in {image_dir})", "items have no image file (recorded as missing)",
             [item for item, path in zip(item_ids, found) if path is None])
    return found


def check_image_paths(item_ids, paths, source) -> list[str | None]:
    """Keep paths that exist; missing files become ``None`` and are counted, naming the files."""
    out, missing = [], []
    for item, path in zip(item_ids, paths):
        if path is not None and Path(path).is_file():
            out.append(str(Path(path).absolute()))
        else:
            out.append(None)
            if path is not None:
                missing.append(f"{item}: {path}")
    warn_ids(source, "image files are missing (recorded as missing)", missing)
    return out
