"""Item content: text fields and media paths, with missing values explicit."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prismrec.data.interactions import IdMap, Interactions

MEDIA_KINDS = ("image", "audio", "video")


def _clean_text(value) -> str | None:
    """``None`` for missing text (None, NaN, empty or whitespace-only), else the stripped string."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def _clean_path(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


@dataclass(eq=False)
class ItemCatalog:
    """Per-item content, aligned with ``item_ids`` (raw ids, str).

    ``text`` maps a field name (``"title"``, ``"plot"``, ``"genres"``...) to an object
    array holding a string or ``None`` (missing). ``media`` maps a kind (``"image"``,
    ``"audio"``, ``"video"``) to an object array of file paths or ``None``.

    Example:
        >>> catalog = ItemCatalog.from_records(
        ...     [{"item": "1", "title": "Heat", "plot": ""}], text_fields=["title", "plot"])
        >>> catalog.text_mask("plot").tolist(), catalog.compose_text("{title}. {plot}")
        ([False], ['Heat'])
    """

    item_ids: np.ndarray
    text: dict[str, np.ndarray] = field(default_factory=dict)
    media: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"
    #: each item's 1-based line (or row) in ``source``, ``-1`` where unknown; ``None`` when not recorded
    lines: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.item_ids = np.asarray([str(i) for i in self.item_ids], dtype=object)
        n = len(self.item_ids)
        if self.lines is not None:
            self.lines = np.asarray(self.lines, dtype=np.int64)
            if len(self.lines) != n:
                raise ValueError(f"{self.source}: {len(self.lines)} line numbers for {n} items")
        self.text = {k: np.asarray([_clean_text(v) for v in vals], dtype=object) for k, vals in self.text.items()}
        self.media = {k: np.asarray([_clean_path(v) for v in vals], dtype=object) for k, vals in self.media.items()}
        for kind in self.media:
            if kind not in MEDIA_KINDS:
                raise ValueError(f"{self.source}: unknown media kind {kind!r}; expected one of {MEDIA_KINDS}")
        for name, vals in [*self.text.items(), *self.media.items()]:
            if len(vals) != n:
                raise ValueError(f"{self.source}: field {name!r} has {len(vals)} values for {n} items")
        if len(set(self.item_ids)) != n:
            raise ValueError(f"{self.source}: item ids are not unique")

    @classmethod
    def from_records(
        cls,
        records: list[dict],
        *,
        id_field: str = "item",
        text_fields: list[str] = (),
        media_fields: dict[str, str] | None = None,
        source: str = "<records>",
    ) -> "ItemCatalog":
        """Build from dicts; ``media_fields`` maps a kind to the record key holding its path."""
        media_fields = media_fields or {}
        return cls(
            item_ids=[r[id_field] for r in records],
            text={f: [r.get(f) for r in records] for f in text_fields},
            media={kind: [r.get(key) for r in records] for kind, key in media_fields.items()},
            source=source,
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def text_fields(self) -> list[str]:
        return list(self.text)

    def text_mask(self, name: str) -> np.ndarray:
        """True where the field has text."""
        return np.array([v is not None for v in self._text(name)], dtype=bool)

    def media_paths(self, kind: str) -> np.ndarray:
        if kind not in self.media:
            raise KeyError(f"{self.source}: the catalog has no {kind!r} files; it has {sorted(self.media) or 'no media'}")
        return self.media[kind]

    def media_mask(self, kind: str) -> np.ndarray:
        """True where a path is recorded *and* the file exists."""
        return np.array([p is not None and Path(p).is_file() for p in self.media_paths(kind)], dtype=bool)

    def _text(self, name: str) -> np.ndarray:
        if name not in self.text:
            raise KeyError(f"{self.source}: no text field {name!r}; available: {sorted(self.text)}")
        return self.text[name]

    def compose_text(self, template: str) -> list[str | None]:
        """Fill ``template`` (e.g. ``"{title}. {genres}. {plot}"``) per item.

        Missing fields are dropped together with the separator that follows them;
        an item whose fields are all missing gets ``None``.
        """
        import string

        parts = list(string.Formatter().parse(template))
        for _, name, _, _ in parts:
            if name is not None:
                self._text(name)
        out: list[str | None] = []
        for row in range(len(self)):
            pieces = []
            for literal, name, _, _ in parts:
                if name is None:
                    pieces.append(("lit", literal))
                    continue
                pieces.append(("lit", literal))
                pieces.append(("val", self.text[name][row]))
            text, pending = "", ""
            for kind, value in pieces:
                if kind == "lit":
                    pending += value
                elif value is not None:
                    text += (pending if text else "") + value
                    pending = ""
                else:
                    pending = ""
            text = (text + pending).strip() if text else ""
            out.append(text.strip() or None)
        return out

    def aligned_to(self, items: IdMap) -> "ItemCatalog":
        """Reorder to the index order of ``items``; items absent here get all-missing content."""
        position = {raw: i for i, raw in enumerate(self.item_ids)}
        rows = np.array([position.get(raw, -1) for raw in items.raw_ids], dtype=np.int64)

        def take(values: np.ndarray) -> np.ndarray:
            out = np.full(len(rows), None, dtype=object)
            out[rows >= 0] = values[rows[rows >= 0]]
            return out

        return ItemCatalog(
            item_ids=items.raw_ids,
            text={k: take(v) for k, v in self.text.items()},
            media={k: take(v) for k, v in self.media.items()},
            source=self.source,
            lines=None if self.lines is None else np.where(rows >= 0, self.lines[np.maximum(rows, 0)], -1),
        )

    def line_of(self, row: int) -> int | None:
        """The 1-based line of item ``row`` in :attr:`source`, or ``None`` when unknown."""
        if self.lines is None or self.lines[row] < 0:
            return None
        return int(self.lines[row])

    def summary(self) -> dict[str, int]:
        """Count of present values per field, e.g. ``{"text:plot": 1728, "image": 1663}``."""
        counts = {f"text:{k}": int(self.text_mask(k).sum()) for k in self.text}
        counts.update({kind: int(self.media_mask(kind).sum()) for kind in self.media})
        return counts


@dataclass(eq=False)
class Dataset:
    """What a loader returns: interactions, optional item content, optional named item features.

    ``item_features`` arrays are aligned with ``interactions.items`` (row i = item index i).
    """

    interactions: Interactions
    catalog: ItemCatalog | None = None
    item_features: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "dataset"

    def __post_init__(self) -> None:
        for key, arr in self.item_features.items():
            if arr.shape[0] != self.interactions.n_items:
                raise ValueError(
                    f"{self.name}: item feature {key!r} has {arr.shape[0]} rows for {self.interactions.n_items} items"
                )

    def k_core(self, k: int) -> "Dataset":
        """k-core filter the interactions and realign the catalog and features."""
        filtered = self.interactions.k_core(k)
        rows = self.interactions.items.to_index(filtered.items.raw_ids)
        return Dataset(
            interactions=filtered,
            catalog=None if self.catalog is None else self.catalog.aligned_to(filtered.items),
            item_features={k_: v[rows] for k_, v in self.item_features.items()},
            name=self.name,
        )

    def __repr__(self) -> str:
        extra = f", catalog={self.catalog.summary()}" if self.catalog is not None else ""
        feats = f", features={ {k: v.shape for k, v in self.item_features.items()} }" if self.item_features else ""
        return f"Dataset({self.name!r}, {self.interactions!r}{extra}{feats})"
