"""On-disk feature store: encoder outputs cached by (encoder id, content hash).

Layout (one folder per encoder id; the id holds the weights' hash, so other weights
never share a folder)::

    root/
      text_minilm@1a2b3c4d5e6f7a8b-0c1d2e3f.9f8e7d6c/
        meta.json                               encoder id and dimension
        .encoding.lock                          held by the one run encoding into this folder
        shard-000001-5c0e9a1b.safetensors       one per finished batch, append-only
        shard-000002-77d1f0aa.safetensors
        ...

A shard holds, for each encoded content: a 32-byte key (sha256 of the encoder's content
hash), the float32 vector, an ``ok`` flag, and (in the header) the error message of the
items that failed, plus a checksum. Shards are written to a temporary file and renamed
into place, so a reader (or a run killed with ``kill -9``) never sees half a shard; a
shard damaged on disk anyway is reported with a warning, set aside as ``*.corrupt`` and
its items are encoded again. Opening an encoder's folder reads every shard once and
builds a sorted key array, so a lookup for a whole catalog is one ``np.searchsorted``.
After a run the small shards are merged, so a folder holds at most two shards
(one large, one small) and a 100k-item catalog is read with two file opens.

:func:`encode_catalog` is the usual entry point: it encodes, in batches, only the items
whose content is not stored yet, writes a shard per finished batch (so a killed run
resumes where it stopped), and returns features aligned with the catalog plus an
:class:`EncodeReport` of what was cached, encoded, missing or unreadable. Two runs that
share a store (two ``compare`` jobs, say) never encode the same items twice: the second
waits on the folder's lock, then reads what the first wrote.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import EncodedItems, Encoder
from prismrec.encoders.shards import (SHARD_NAME, ShardDamaged, ShardTable, content_keys, max_counter,
                                      read_shard, remove_stale_temp_files, set_aside, shard_rows, write_shard)
from prismrec.io import atomic_write_json

__all__ = ["EncodeFailure", "EncodeReport", "FeatureStore", "StoredEncodedItems", "encode_catalog",
           "encoder_folder_name"]


def encoder_folder_name(encoder_id: str) -> str:
    """A file-system-safe folder name for an encoder id (readable, plus a hash of the id)."""
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", encoder_id)
    return f"{safe}.{hashlib.sha256(encoder_id.encode()).hexdigest()[:8]}"


class FeatureStore:
    """A folder of cached encoder outputs (see the module docstring for the layout).

    Example:
        >>> store = FeatureStore("/tmp/prismrec-features")  # doctest: +SKIP
        >>> result = encode_catalog(create_encoder("text:minilm"), catalog, store)  # doctest: +SKIP
        >>> store.encoder_ids()  # doctest: +SKIP
        ['text:minilm@1a2b3c4d5e6f7a8b-0c1d2e3f']
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._tables: dict[str, ShardTable] = {}
        self._counters: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    def folder(self, encoder_id: str) -> Path:
        return self.root / encoder_folder_name(encoder_id)

    def encoder_ids(self) -> list[str]:
        """Ids of the encoders with a folder here (read from each folder's ``meta.json``)."""
        ids = []
        for meta in sorted(self.root.glob("*/meta.json")):
            try:
                ids.append(json.loads(meta.read_text(encoding="utf-8"))["encoder_id"])
            except (OSError, ValueError, KeyError):
                continue
        return ids

    def shard_paths(self, encoder_id: str) -> list[Path]:
        """Complete shard files of an encoder, oldest first."""
        folder = self.folder(encoder_id)
        if not folder.is_dir():
            return []
        named = [(m, p) for p in folder.iterdir() if (m := SHARD_NAME.match(p.name))]
        return [p for m, p in sorted(named, key=lambda mp: (int(mp[0].group(1)), mp[1].name))]

    def recorded_dim(self, encoder_id: str) -> int | None:
        """The dimension recorded for ``encoder_id`` (``None`` when nothing is stored yet)."""
        meta = self.folder(encoder_id) / "meta.json"
        try:
            dim = json.loads(meta.read_text(encoding="utf-8")).get("dim")
        except (OSError, ValueError):
            return None
        return None if dim is None else int(dim)

    def table(self, encoder_id: str, dim: int, *, reload: bool = False) -> ShardTable:
        """The in-memory table of an encoder, read from its shards on first use."""
        if reload or encoder_id not in self._tables:
            self._tables[encoder_id] = self._load_table(encoder_id, dim)
        table = self._tables[encoder_id]
        if table.dim != dim:
            raise ValueError(f"{self.folder(encoder_id)}: encoder {encoder_id!r} was stored with "
                             f"dimension {table.dim}, but the encoder now reports {dim}")
        return table

    def _load_table(self, encoder_id: str, dim: int) -> ShardTable:
        meta = self.folder(encoder_id) / "meta.json"
        if meta.is_file():
            stored_dim = json.loads(meta.read_text(encoding="utf-8")).get("dim")
            if stored_dim is not None and int(stored_dim) != dim:
                raise ValueError(f"{meta}: encoder {encoder_id!r} was stored with dimension {stored_dim}, "
                                 f"but the encoder now reports {dim}")
        for _attempt in range(5):  # a concurrent compaction may delete a shard we listed
            table = ShardTable(dim)
            try:
                for path in self.shard_paths(encoder_id):
                    try:
                        table.add(*read_shard(path, encoder_id=encoder_id, dim=dim))
                    except ShardDamaged as damage:
                        set_aside(path, str(damage))
                        table.damaged.append((path, str(damage)))
                return table
            except FileNotFoundError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.folder(encoder_id)}: shards kept disappearing while reading")

    def append(self, encoder_id: str, keys: np.ndarray, features: np.ndarray, ok: np.ndarray,
               messages: np.ndarray) -> Path:
        """Write one shard atomically and add its rows to the in-memory table."""
        folder = self.folder(encoder_id)
        table = self.table(encoder_id, features.shape[1])
        if not (folder / "meta.json").exists():
            atomic_write_json(folder / "meta.json", {"encoder_id": encoder_id, "dim": int(features.shape[1])})
        path = self._new_shard_path(encoder_id)
        write_shard(path, keys, features, ok, messages, encoder_id=encoder_id)
        table.add(keys, features, ok, messages)
        return path

    def _new_shard_path(self, encoder_id: str) -> Path:
        """Next counter (the folder is listed once per store object) plus a random part for concurrent writers."""
        if encoder_id not in self._counters:
            self._counters[encoder_id] = max_counter(self.shard_paths(encoder_id))
        counter = self._counters[encoder_id] + 1
        self._counters[encoder_id] = counter
        return self.folder(encoder_id) / f"shard-{counter:06d}-{secrets.token_hex(4)}.safetensors"

    def compact(self, encoder_id: str, dim: int) -> list[Path]:
        """Merge the small shards into one; returns the shard files that remain.

        The largest shard is kept as it is when it holds at least as many rows as all the
        others together, so a small change does not rewrite a large store.
        """
        remove_stale_temp_files(self.folder(encoder_id))
        paths = self.shard_paths(encoder_id)
        if len(paths) <= 1:
            return paths
        sizes = [shard_rows(p) for p in paths]
        largest = int(np.argmax(sizes))
        keep = [paths[largest]] if sizes[largest] >= sum(sizes) - sizes[largest] else []
        merge = [p for p in paths if p not in keep]
        if len(merge) <= 1:
            return paths
        table = ShardTable(dim)
        for path in merge:
            try:
                table.add(*read_shard(path, encoder_id=encoder_id, dim=dim))
            except FileNotFoundError:  # merged away by a concurrent compaction
                continue
            except ShardDamaged as damage:
                set_aside(path, str(damage))
        merged = self._new_shard_path(encoder_id)
        write_shard(merged, *table.arrays(), encoder_id=encoder_id)
        for path in merge:
            path.unlink(missing_ok=True)
        return self.shard_paths(encoder_id)


# --------------------------------------------------------------------------- encoding runs


@dataclass
class EncodeFailure:
    """An item whose content could not be encoded."""

    row: int
    item_id: str
    content: str
    message: str
    cached: bool = True  # False when the encoder raised: the item is tried again next run
    line: int | None = None  # the item's line in the catalog's source file, when known
    source: str = ""

    @property
    def where(self) -> str:
        return f"{self.source} line {self.line}" if self.line is not None else f"catalog row {self.row}"


@dataclass
class EncodeReport:
    """What a run of :func:`encode_catalog` did; ``str(report)`` is a summary for humans.

    Each item is counted once: ``n_cached + n_encoded + n_missing_content + n_failed == n_items``,
    where ``n_cached`` and ``n_encoded`` count successes (read from the cache, newly encoded)
    and ``n_failed`` counts cached and new failures; ``mask.sum() == n_cached + n_encoded``.
    """

    encoder_id: str
    n_items: int
    n_cached: int
    n_encoded: int
    n_missing_content: int
    n_failed: int
    failures: list[EncodeFailure] = field(default_factory=list)
    n_damaged_shards: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [f"{self.encoder_id}: {self.n_items} items: {self.n_cached} from the cache, "
                 f"{self.n_encoded} encoded, {self.n_missing_content} without content, "
                 f"{self.n_failed} failed ({self.seconds:.2f} s)"]
        if self.n_damaged_shards:
            lines.append(f"  {self.n_damaged_shards} damaged shard(s) were set aside and their items re-encoded")
        for failure in self.failures[:20]:
            retry = "" if failure.cached else " (not cached; retried next run)"
            lines.append(f"  item {failure.item_id} ({failure.where}, {failure.content}): {failure.message}{retry}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more")
        return "\n".join(lines)


@dataclass
class StoredEncodedItems(EncodedItems):
    """:class:`EncodedItems` plus the :class:`EncodeReport` of the run that produced them."""

    report: EncodeReport | None = None


def encode_catalog(encoder: Encoder, catalog: ItemCatalog, store: FeatureStore | str | Path, *,
                   batch_size: int = 32, progress: bool = True) -> StoredEncodedItems:
    """Encode a catalog through the feature store: cached items are read, the rest encoded.

    Each finished batch is written as a shard at once, so a run that is killed resumes
    where it stopped. Unreadable content never stops the run: it is masked out, reported
    in ``result.report`` and cached as failed until its bytes change.

    Example:
        >>> encoder = create_encoder("text:minilm")  # doctest: +SKIP
        >>> result = encode_catalog(encoder, catalog, FeatureStore("features"))  # doctest: +SKIP
        >>> result.features.shape, result.mask.sum(), print(result.report)  # doctest: +SKIP
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    started = time.perf_counter()
    encoder_id = encoder.id  # the id hashes the weights: compute once
    # a warm cache knows the dimension, so a fully cached run never loads the model
    dim = store.recorded_dim(encoder_id) or int(encoder.dim)
    contents = list(encoder.contents(catalog))
    if len(contents) != len(catalog):
        raise ValueError(f"encoder {encoder_id!r} returned {len(contents)} contents for {len(catalog)} items "
                         f"of {catalog.source}")
    present = np.array([i for i, c in enumerate(contents) if c is not None], dtype=np.int64)
    keys = content_keys([encoder.content_hash(contents[i]) for i in present])
    table = store.table(encoder_id, dim)
    cached = table.find(keys) >= 0
    raised = {}
    if not cached.all():
        # one writer per encoder folder: a second run on the same store waits, then reads what the
        # first one encoded instead of encoding everything again
        with _encoder_lock(store, encoder_id, progress) as waited:
            if waited:  # the other run wrote shards meanwhile: read them
                damaged = table.damaged
                table = store.table(encoder_id, dim, reload=True)
                table.damaged = damaged + table.damaged
                cached = table.find(keys) >= 0
            _, first = np.unique(keys[~cached], return_index=True)  # identical contents are encoded once
            todo = np.sort(np.flatnonzero(~cached)[first])
            raised = _encode_missing(encoder, encoder_id, dim, contents, present, keys, todo, store,
                                     batch_size=batch_size, progress=progress)
            if len(todo):
                store.compact(encoder_id, dim)
    result, retried_rows = _assemble(encoder_id, contents, present, keys, table, raised, dim)
    failed = np.isin(present, np.fromiter(result.errors, dtype=np.int64, count=len(result.errors)))
    result.report = EncodeReport(
        encoder_id=encoder_id, n_items=len(contents), n_cached=int((cached & ~failed).sum()),
        n_encoded=int((~cached & ~failed).sum()), n_missing_content=len(contents) - len(present),
        n_failed=len(result.errors), failures=[
            EncodeFailure(row, str(catalog.item_ids[row]), _short(contents[row]), message, row not in retried_rows,
                          catalog.line_of(row), catalog.source)
            for row, message in sorted(result.errors.items())],
        n_damaged_shards=len(table.damaged), seconds=time.perf_counter() - started)
    table.damaged = []  # reported once
    if progress and (result.report.n_encoded or result.report.n_failed):
        from rich.console import Console

        Console(stderr=True).print(str(result.report), highlight=False, markup=False)
    return result


@contextmanager
def _encoder_lock(store: FeatureStore, encoder_id: str, progress: bool):
    """Hold ``<encoder folder>/.encoding.lock`` (a file lock, released if the process dies); yields
    whether another run held it first."""
    from filelock import FileLock, Timeout

    folder = store.folder(encoder_id)
    folder.mkdir(parents=True, exist_ok=True)
    lock, waited = FileLock(str(folder / ".encoding.lock")), False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        waited = True
        message = f"waiting: another process is encoding {encoder_id} into {store.root}; its items will be reused"
        if progress:
            from rich.console import Console

            Console(stderr=True).print(message, highlight=False, markup=False)
        lock.acquire()
    try:
        yield waited
    finally:
        lock.release()


def _encode_missing(encoder, encoder_id, dim, contents, present, keys, todo, store, *, batch_size,
                    progress) -> dict[bytes, str]:
    """Encode the ``todo`` entries batch by batch, one shard per batch; returns uncached failures."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    raised: dict[bytes, str] = {}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("items"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress or len(todo) == 0, transient=False) as bar:
        task = bar.add_task(f"encoding {encoder_id}", total=len(todo))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            vectors, messages, cacheable = _safe_encode(encoder, encoder_id, dim,
                                                        [contents[i] for i in present[batch]])
            keep = np.asarray(cacheable, dtype=bool)
            for key, message, stored in zip(keys[batch], messages, cacheable):
                if not stored:
                    raised[bytes(key)] = message
            if keep.any():
                store.append(encoder_id, keys[batch][keep], vectors[keep], np.array(
                    [m is None for m in messages])[keep], np.array(messages, dtype=object)[keep])
            bar.advance(task, len(batch))
    return raised


def _safe_encode(encoder, encoder_id: str, dim: int, batch: list):
    """``encode_batch`` with its output checked; items are retried one by one if it raises."""
    try:
        vectors, messages = encoder.encode_batch(batch)
    except Exception as exc:  # noqa: BLE001 - an encoder bug must not lose the whole run
        if len(batch) == 1:
            return np.zeros((1, dim), np.float32), [f"{type(exc).__name__}: {exc}"], [False]
        parts = [_safe_encode(encoder, encoder_id, dim, [content]) for content in batch]
        return (np.concatenate([p[0] for p in parts]), [m for p in parts for m in p[1]],
                [c for p in parts for c in p[2]])
    vectors, messages = np.asarray(vectors, dtype=np.float32), list(messages)
    if vectors.shape != (len(batch), dim) or len(messages) != len(batch):
        raise ValueError(f"encoder {encoder_id!r}: encode_batch returned features {vectors.shape} and "
                         f"{len(messages)} messages for {len(batch)} contents; expected ({len(batch)}, {dim})")
    vectors = vectors.copy()
    for row in range(len(batch)):
        if messages[row] is None and not np.isfinite(vectors[row]).all():
            messages[row] = "encoder returned non-finite values (NaN or inf)"
        if messages[row] is not None:
            messages[row], vectors[row] = str(messages[row]), 0.0
    return vectors, messages, [True] * len(batch)


def _assemble(encoder_id, contents, present, keys, table, raised, dim) -> tuple[StoredEncodedItems, set[int]]:
    """Gather stored rows into catalog order (one vectorised lookup); also rows that failed uncached."""
    rows = table.find(keys)
    found = rows >= 0
    good = found.copy()
    good[found] = table.ok_at(rows[found])
    mask = np.zeros(len(contents), dtype=bool)
    mask[present[good]] = True
    if mask.all():  # the usual case: gather straight into the result
        features = table.features_at(rows)
    else:
        features = np.zeros((len(contents), dim), dtype=np.float32)
        features[present[good]] = table.features_at(rows[good])
    errors: dict[int, str] = {}
    retried: set[int] = set()
    for index in np.flatnonzero(~good):
        row = int(present[index])
        if found[index]:
            errors[row] = table.message_at(rows[index]) or "failed"
        else:
            errors[row] = raised.get(bytes(keys[index]), "not encoded")
            retried.add(row)
    return StoredEncodedItems(features, mask, errors, encoder_id), retried


def _short(content) -> str:
    text = str(content)
    return text if len(text) <= 80 else text[:77] + "..."


def cached_encode_batch(encoder: Encoder, store: FeatureStore, contents: list) -> tuple[np.ndarray, list[str | None]]:
    """``encoder.encode_batch(contents)`` through ``store``: stored rows are read, the rest encoded
    and stored. Lets a composite encoder (e.g. ``align:``) reuse its towers' cached features.

    Example:
        >>> vectors, errors = cached_encode_batch(tower, FeatureStore(".prismrec_cache"), texts)  # doctest: +SKIP
    """
    encoder_id = encoder.id
    dim = store.recorded_dim(encoder_id) or int(encoder.dim)
    keys = content_keys([encoder.content_hash(content) for content in contents])
    features = np.zeros((len(contents), dim), dtype=np.float32)
    errors: list[str | None] = [None] * len(contents)
    table = store.table(encoder_id, dim)
    positions = table.find(keys)
    found, missing = np.flatnonzero(positions >= 0), np.flatnonzero(positions < 0)
    if len(found):  # read before appending: an append re-sorts the table and moves positions
        features[found] = table.features_at(positions[found])
        for row, position, good in zip(found, positions[found], table.ok_at(positions[found])):
            if not good:
                features[row] = 0.0
                errors[row] = table.message_at(int(position)) or "failed"
    if len(missing):
        vectors, new_errors = encoder.encode_batch([contents[i] for i in missing])
        vectors = np.asarray(vectors, dtype=np.float32)
        ok = np.array([error is None for error in new_errors], dtype=bool)
        store.append(encoder_id, keys[missing], vectors, ok, np.array(new_errors, dtype=object))
        features[missing] = vectors
        for row, error in zip(missing, new_errors):
            errors[row] = error
    return features, errors
