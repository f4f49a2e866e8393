"""``items_tmdb.csv``: TMDB plot text for MovieLens movies, with optional poster folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import ItemCatalog
from prismrec.data.loaders._common import clean_strings, find_images, read_text, to_numbers, warn_rows

# CSV genre column -> MovieLens genre name
_GENRE_NAMES = {"genre_unknown": "unknown", "Children": "Children's", "FilmNoir": "Film-Noir", "SciFi": "Sci-Fi"}
_REQUIRED = ("movie_id", "title", "year", "overview")


def _genres(frame: pd.DataFrame, path) -> pd.Series:
    """Comma-separated names of the 0/1 columns between ``title`` and ``year``."""
    columns = list(frame.columns)
    genre_cols = columns[columns.index("title") + 1: columns.index("year")]
    flags = frame[genre_cols].fillna("0").apply(lambda col: col.str.strip())
    bad = ~flags.isin(["0", "1"])
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise ValueError(f"{path}, line {row + 2}: genre column {genre_cols[col]!r} expected 0 or 1, "
                         f"found {flags.iat[row, col]!r}")
    names = [_GENRE_NAMES.get(c, c) for c in genre_cols]
    joined = [", ".join(n for n, f in zip(names, row) if f == "1") for row in flags.itertuples(index=False)]
    return pd.Series(joined, index=frame.index).replace("", None)


def load_tmdb_items(csv_path, posters_dir=None) -> ItemCatalog:
    """Read ``items_tmdb.csv`` into a catalog keyed by ``movie_id``.

    Text fields: ``title``, ``genres`` (comma-separated), ``year``, ``plot`` (from
    ``overview``), ``language`` (``original_language``). Repeated ``movie_id`` rows are
    merged: per field, the first non-empty value in file order wins; the number of
    merged rows is reported in a warning. With ``posters_dir``, media ``image`` is
    ``<posters_dir>/<movie_id>.jpg`` or ``None`` (counted) when the file is absent.

    Example:
        >>> catalog = load_tmdb_items("items_tmdb.csv", "posters")  # doctest: +SKIP
        >>> catalog.summary()["image"]  # doctest: +SKIP
        1663
    """
    from io import StringIO

    path = Path(csv_path)
    frame = pd.read_csv(StringIO(read_text(path)), dtype=str, keep_default_na=False)
    frame = clean_strings(frame)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    lines = (np.arange(len(frame)) + 2).tolist()  # line 1 is the header
    ids = to_numbers(frame["movie_id"], lines, path, "movie_id", integer=True).astype(np.int64).astype(str)
    has_year = frame["year"].notna().to_numpy()
    years = np.full(len(frame), None, dtype=object)
    if has_year.any():
        numbers = to_numbers(frame["year"][has_year], np.asarray(lines)[has_year], path, "year")
        years[has_year] = [str(int(y)) for y in numbers]
    fields = pd.DataFrame({
        "item": ids,
        "title": frame["title"],
        "genres": _genres(frame, path),
        "year": years,
        "plot": frame["overview"],
        "language": frame["original_language"] if "original_language" in frame else None,
    })
    repeated = fields["item"].duplicated().to_numpy()
    warn_rows(path, f"repeated movie_id rows merged into {len(fields) - int(repeated.sum())} movies "
                    "(first non-empty value per field wins)", np.asarray(lines)[repeated])
    merged = fields.groupby("item", sort=False).first()  # first() skips missing values
    text = {name: merged[name].to_numpy(dtype=object) for name in ("title", "genres", "year", "plot", "language")}
    media = {}
    if posters_dir is not None:
        media["image"] = find_images(merged.index.tolist(), posters_dir, path)
    return ItemCatalog(merged.index.to_numpy(dtype=object), text=text, media=media, source=str(path))
