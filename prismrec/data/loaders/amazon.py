"""Amazon review dumps (McAuley et al., 2014 and 2018 formats), JSON lines, optionally gzipped.

2014 reviews: ``reviewerID, asin, overall, unixReviewTime, reviewText, summary``; 2018
adds ``vote, style, image, verified``. Older dumps hold Python dict literals rather
than strict JSON; those lines are read with ``ast.literal_eval``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd

from prismrec.data.catalog import Dataset, ItemCatalog
from prismrec.data.loaders._common import attach_catalog, build_interactions, find_images, read_text, warn_rows

_REQUIRED = ("reviewerID", "asin", "overall", "unixReviewTime")


def read_records(path):
    """Yield ``(line_number, dict)`` per non-blank line; a line that is neither JSON nor a
    Python dict literal raises ``ValueError`` naming the line."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise ValueError(f"{path}, line {number}: expected one JSON object per line, "
                                 f"found {line[:80]!r}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, found {type(record).__name__}")
        yield number, record


def load_amazon_review_texts(path) -> pd.DataFrame:
    """All reviews as a DataFrame ``line, user, item, rating, timestamp, summary, text``.

    A review without ``reviewerID``, ``asin``, ``overall`` or ``unixReviewTime`` raises
    ``ValueError`` naming the line; a missing summary or text is ``None``.

    Example:
        >>> reviews = load_amazon_review_texts("reviews_Musical_Instruments_5.json.gz")  # doctest: +SKIP
        >>> list(reviews.columns)  # doctest: +SKIP
        ['line', 'user', 'item', 'rating', 'timestamp', 'summary', 'text']
    """
    rows = []
    for number, record in read_records(path):
        missing = [key for key in _REQUIRED if record.get(key) in (None, "")]
        if missing:
            raise ValueError(f"{path}, line {number}: expected keys {list(_REQUIRED)}, missing {missing}")
        try:
            rating, timestamp = float(record["overall"]), float(record["unixReviewTime"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {number}: expected numbers for overall and unixReviewTime, found "
                             f"{record['overall']!r} and {record['unixReviewTime']!r}") from None
        rows.append((number, str(record["reviewerID"]), str(record["asin"]), rating, timestamp,
                     record.get("summary") or None, record.get("reviewText") or None))
    return pd.DataFrame(rows, columns=["line", "user", "item", "rating", "timestamp", "summary", "text"])


def _join(value) -> str | None:
    """Flatten meta values: lists (or lists of lists) become ``", "``-joined text."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [_join(v) for v in value]
        return ", ".join(dict.fromkeys(p for p in parts if p)) or None
    return str(value)


def load_amazon_meta(meta_path, *, image_dir=None) -> ItemCatalog:
    """Item metadata lines (``asin, title, description, categories|category, brand,
    imUrl|imageURL``) as a catalog with text fields ``title, description, categories,
    brand, image_url``. With ``image_dir``, media ``image`` is ``<image_dir>/<asin>.jpg``
    (``None`` when absent). Repeated asins keep the first line and are counted.
    """
    records, repeated = {}, []
    for number, record in read_records(meta_path):
        asin = record.get("asin")
        if not asin:
            raise ValueError(f"{meta_path}, line {number}: expected an 'asin' key, found keys {sorted(record)}")
        if asin in records:
            repeated.append(number)
            continue
        image = record.get("imUrl") or record.get("imageURLHighRes") or record.get("imageURL")
        records[asin] = {
            "item": asin,
            "title": _join(record.get("title")),
            "description": _join(record.get("description")),
            "categories": _join(record.get("categories") or record.get("category")),
            "brand": _join(record.get("brand")),
            "image_url": (image[0] if image else None) if isinstance(image, list) else image,
        }
    warn_rows(meta_path, "repeated asin lines skipped (the first is kept)", repeated)
    fields = ["title", "description", "categories", "brand", "image_url"]
    catalog = ItemCatalog.from_records(list(records.values()), text_fields=fields, source=str(meta_path))
    if image_dir is None:
        return catalog
    images = find_images(catalog.item_ids, image_dir, meta_path)
    return ItemCatalog(catalog.item_ids, text=catalog.text, media={"image": images}, source=str(meta_path))


def load_amazon_reviews(path, *, meta_path=None, rating_threshold: float | None = None,
                        image_dir=None) -> Dataset:
    """Amazon reviews as interactions (user = reviewerID, item = asin, unix timestamps).

    Review text and summary are available from :func:`load_amazon_review_texts`. With
    ``meta_path`` the catalog is filled from item metadata; items without metadata get
    missing fields (counted in a warning).

    Example:
        >>> data = load_amazon_reviews("reviews_Musical_Instruments_5.json.gz")  # doctest: +SKIP
        >>> len(data.interactions)  # doctest: +SKIP
        10261
    """
    reviews = load_amazon_review_texts(path)
    frame = reviews[["line", "user", "item", "rating", "timestamp"]]
    interactions, _ = build_interactions(frame, path, rating_threshold=rating_threshold)
    catalog = None
    if meta_path is not None:
        catalog = attach_catalog(load_amazon_meta(meta_path, image_dir=image_dir), interactions.items, meta_path)
    return Dataset(interactions=interactions, catalog=catalog, name=Path(path).name.split(".")[0])
