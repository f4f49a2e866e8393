"""The served item catalogue: training items plus ingested ones, looked up by raw id.

Image paths come only from the bundle's catalogue or from the server's own media
folder (named by content hash); a client's id is only ever a dictionary key.

Example:
    >>> from prismrec.data.interactions import IdMap
    >>> catalog = ServingCatalog(IdMap(["a", "b"]), None)
    >>> catalog.row("b"), catalog.describe(0)
    (1, {'item_id': 'a', 'title': 'a', 'fields': {}, 'has_image': False})
"""
from __future__ import annotations

from pathlib import Path

from prismrec.data.catalog import ItemCatalog


class ServingCatalog:
    """Raw ids, text fields and image paths of every servable item, in index order."""

    def __init__(self, items, catalog: ItemCatalog | None) -> None:
        self.item_ids = [str(raw) for raw in items.raw_ids]
        self.rows = {raw: i for i, raw in enumerate(self.item_ids)}
        aligned = catalog.aligned_to(items) if catalog is not None else None
        self.text = {name: list(values) for name, values in (aligned.text.items() if aligned else [])}
        self.images = list(aligned.media["image"]) if aligned is not None and "image" in aligned.media \
            else [None] * len(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id) -> bool:
        return str(item_id) in self.rows

    @property
    def text_fields(self) -> list[str]:
        return list(self.text)

    def row(self, item_id: str) -> int:
        row = self.rows.get(str(item_id))
        if row is None:
            example = self.item_ids[0] if self.item_ids else "none"
            raise KeyError(f"unknown item {item_id!r}: it is neither in the training catalogue nor ingested "
                           f"through POST /items (e.g. {example!r})")
        return row

    def title(self, row: int) -> str:
        titles = self.text.get("title")
        title = titles[row] if titles is not None else None
        return title if title is not None else self.item_ids[row]

    def image_path(self, row: int) -> Path | None:
        path = self.images[row]
        return None if path is None else Path(path)

    def describe(self, row: int) -> dict:
        """Public view of an item (no file paths)."""
        fields = {name: values[row] for name, values in self.text.items() if values[row] is not None}
        return {"item_id": self.item_ids[row], "title": self.title(row), "fields": fields,
                "has_image": self.images[row] is not None and Path(self.images[row]).is_file()}

    def search(self, query: str, limit: int = 20) -> list[dict]:
        """Items whose title contains ``query`` (case-insensitive), titles starting with it first."""
        needle = query.strip().lower()
        titles = [(self.title(row).lower(), row) for row in range(len(self))]
        hits = [(not title.startswith(needle), title, row) for title, row in titles if needle in title]
        return [self.describe(row) for _, _, row in sorted(hits)[:limit]]

    def new_items_catalog(self, records: list) -> ItemCatalog:
        """An :class:`ItemCatalog` of ``(item_id, fields, image)`` records, with this catalogue's text fields."""
        names = sorted(set(self.text_fields) | {name for _, fields, _ in records for name in fields})
        return ItemCatalog(
            item_ids=[item_id for item_id, _, _ in records],
            text={name: [fields.get(name) for _, fields, _ in records] for name in names},
            media={"image": [None if image is None else str(image[1]) for _, _, image in records]},
            source="POST /items")

    def append(self, item_id: str, fields: dict, image_path: Path | None) -> int:
        row = len(self.item_ids)
        self.item_ids.append(item_id)
        self.rows[item_id] = row
        for name in set(self.text) | set(fields):
            self.text.setdefault(name, [None] * row).append(fields.get(name))
        self.images.append(None if image_path is None else str(image_path))
        return row
