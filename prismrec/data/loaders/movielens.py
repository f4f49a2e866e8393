"""MovieLens-100k (GroupLens) folder: ``u.data``, ``u.item``, optional ``u.genre``/``u.user``.

When the folder also holds ``items_tmdb.csv`` and/or ``posters/`` (the multimodal
variant), the catalog gains a ``plot`` text field and an ``image`` media path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import Dataset, ItemCatalog
from prismrec.data.interactions import IdMap
from prismrec.data.loaders._common import (
    attach_catalog, build_interactions, find_images, split_lines, to_numbers, warn_ids)
from prismrec.data.loaders.tmdb import load_tmdb_items

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")


def read_u_data(path) -> pd.DataFrame:
    """``user \\t item \\t rating \\t timestamp`` lines; any malformed line raises ``ValueError``."""
    rows, lines = split_lines(path, "\t", 4)
    columns = list(zip(*rows)) if rows else [(), (), (), ()]
    frame = pd.DataFrame({"line": np.asarray(lines, dtype=np.int64)})
    for name, values, integer in zip(("user", "item", "rating", "timestamp"), columns, (True, True, False, False)):
        numbers = to_numbers(values, lines, path, name, integer=integer)
        frame[name] = numbers.astype(np.int64).astype(str) if integer else numbers
    return frame


def read_genre_names(folder: Path) -> tuple[str, ...]:
    """Genre names from ``u.genre`` (``name|index`` lines) or the standard 19."""
    path = folder / "u.genre"
    if not path.is_file():
        return GENRES
    rows, lines = split_lines(path, "|", 2, encoding=None)
    names = [None] * len(rows)
    for (name, index), line in zip(rows, lines):
        position = int(to_numbers([index], [line], path, "index", integer=True)[0])
        if not 0 <= position < len(rows):
            raise ValueError(f"{path}, line {line}: genre index must be in [0, {len(rows)}), found {position}")
        names[position] = name
    return tuple(names)


def read_u_item(path, genres: tuple[str, ...], *, encoding: str | None = None) -> ItemCatalog:
    """``u.item``: id|title|release date|video date|IMDb URL|<one flag per genre>.

    ``encoding=None`` decodes UTF-8 when the bytes are valid UTF-8, else Latin-1 (the
    published file is Latin-1, so ``"Mis\\xe9rables"`` becomes ``"Misérables"``).
    """
    rows, lines = split_lines(path, "|", 5 + len(genres), encoding=encoding)
    ids = to_numbers([fields[0] for fields in rows], lines, path, "movie id", integer=True).astype(np.int64)
    records = []
    for fields, line, item_id in zip(rows, lines, ids):
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise ValueError(f"{path}, line {line}: genre flags must be 0 or 1, found {'|'.join(flags)!r}")
        date = fields[2].strip()
        records.append({
            "item": str(item_id),
            "title": fields[1],
            "genres": ", ".join(g for g, flag in zip(genres, flags) if flag == "1"),
            "year": date[-4:] if len(date) >= 4 and date[-4:].isdigit() else None,
        })
    return ItemCatalog.from_records(records, text_fields=["title", "genres", "year"], source=str(path))


def _enrich(catalog: ItemCatalog, folder: Path) -> ItemCatalog:
    """Add ``plot`` from ``items_tmdb.csv`` and ``image`` from ``posters/`` when present."""
    text, media = dict(catalog.text), dict(catalog.media)
    if (folder / "items_tmdb.csv").is_file():
        tmdb = load_tmdb_items(folder / "items_tmdb.csv", folder / "posters" if (folder / "posters").is_dir() else None)
        aligned = tmdb.aligned_to(IdMap(catalog.item_ids))
        text["plot"] = aligned.text["plot"]
        media.update(aligned.media)
    elif (folder / "posters").is_dir():
        media["image"] = find_images(catalog.item_ids, folder / "posters", folder / "u.item")
    return ItemCatalog(catalog.item_ids, text=text, media=media, source=catalog.source)


def load_movielens_100k(path, *, rating_threshold: float | None = None, with_catalog: bool = True) -> Dataset:
    """Load a MovieLens-100k folder.

    Catalog text fields: ``title``, ``genres`` (comma-separated), ``year``; plus ``plot``
    and media ``image`` when ``items_tmdb.csv`` / ``posters/`` are in the folder.
    Users listed in ``u.user`` without any kept interaction are reported, not kept.

    Example:
        >>> data = load_movielens_100k("/data/ml-100k", rating_threshold=4)  # doctest: +SKIP
        >>> data.catalog.text["title"][0]  # doctest: +SKIP
        'Toy Story (1995)'
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: MovieLens-100k folder not found (expected u.data and u.item inside)")
    frame = read_u_data(folder / "u.data")
    interactions, _ = build_interactions(frame, folder / "u.data", rating_threshold=rating_threshold)
    if (folder / "u.user").is_file():
        rows, _ = split_lines(folder / "u.user", "|", None, encoding=None)
        in_data = set(frame["user"])
        warn_ids(folder / "u.user", "users have no interaction in u.data and are left out",
                 [fields[0] for fields in rows if fields[0] not in in_data])
    catalog = None
    if with_catalog:
        catalog = read_u_item(folder / "u.item", read_genre_names(folder))
        catalog = attach_catalog(_enrich(catalog, folder), interactions.items, folder / "u.item")
    return Dataset(interactions=interactions, catalog=catalog, name="movielens-100k")
