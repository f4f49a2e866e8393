"""Shard files of the feature store, and the in-memory table built from them.

A shard holds, for each encoded content: a 32-byte key (sha256 of the encoder's content
hash), the float32 vector, an ``ok`` flag, and (in the safetensors header) the error
messages of the items that failed, the encoder id and a checksum. It is written to a
temporary file and renamed into place, so nobody ever reads half a shard; a shard damaged
on disk anyway raises :class:`ShardDamaged` when read, and the store sets it aside.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from prismrec.io import atomic_path

SHARD_FORMAT = "prismrec-feature-shard/1"
SHARD_NAME = re.compile(r"^shard-(\d+)-([0-9a-f]+)\.safetensors$")
_STALE_TEMP_SECONDS = 3600.0


def content_keys(content_hashes: list[str]) -> np.ndarray:
    """Fixed-width 32-byte store keys (dtype ``S32``) for content hashes.

    Example:
        >>> content_keys(["abc", "abc", "xyz"]).shape, content_keys(["abc"]).dtype
        ((3,), dtype('S32'))
    """
    digests = b"".join(hashlib.sha256(str(h).encode("utf-8")).digest() for h in content_hashes)
    return np.frombuffer(digests, dtype="S32").copy() if digests else np.empty(0, dtype="S32")


class ShardTable:
    """Everything stored for one encoder, held in memory and sorted by key.

    ``find(keys)`` returns, per key, the row in ``features``/``ok``/``messages`` or -1.
    Rows added with :meth:`add` are merged in lazily (one sort per lookup, not per batch).
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.damaged: list[tuple[Path, str]] = []  # shards ignored while loading
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._merged: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, keys: np.ndarray, features: np.ndarray, ok: np.ndarray, messages: np.ndarray) -> None:
        self._parts.append((keys, features, ok, messages))
        self._merged = None

    def _merge(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._merged is None:
            if not self._parts:
                empty = (np.empty(0, "S32"), np.zeros((0, self.dim), np.float32), np.zeros(0, bool),
                         np.empty(0, object))
                self._merged = empty
                return empty
            keys, features, ok, messages = (np.concatenate(column) for column in zip(*self._parts))
            # a key stored twice (e.g. by two concurrent runs): the last shard wins
            unique, first_in_reversed = np.unique(keys[::-1], return_index=True)
            rows = len(keys) - 1 - first_in_reversed
            self._merged = (unique, features[rows], ok[rows], messages[rows])
            self._parts = [self._merged]
        return self._merged

    def __len__(self) -> int:
        return len(self._merge()[0])

    @property
    def keys(self) -> np.ndarray:
        return self._merge()[0]

    @property
    def features(self) -> np.ndarray:
        return self._merge()[1]

    @property
    def ok(self) -> np.ndarray:
        return self._merge()[2]

    @property
    def messages(self) -> np.ndarray:
        return self._merge()[3]

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key in this table, -1 where the key is not stored (vectorised)."""
        stored = self.keys
        if len(stored) == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        position = np.minimum(np.searchsorted(stored, keys), len(stored) - 1)
        return np.where(stored[position] == keys, position, -1).astype(np.int64)


class ShardDamaged(Exception):
    """A shard file that cannot be read back as written (truncated, altered, foreign)."""


def write_shard(path: Path, keys: np.ndarray, features: np.ndarray, ok: np.ndarray,
                messages: np.ndarray, *, encoder_id: str) -> None:
    """Write a shard (keys, vectors, ok flags, error messages) via a temporary file + rename."""
    key_bytes = np.ascontiguousarray(keys.astype("S32")).view(np.uint8).reshape(-1, 32)
    features = np.ascontiguousarray(features, dtype=np.float32)
    ok = np.ascontiguousarray(ok, dtype=bool)
    errors = {str(i): str(m) for i, m in enumerate(messages) if m is not None}
    metadata = {"format": SHARD_FORMAT, "encoder_id": encoder_id, "rows": str(len(keys)),
                "errors": json.dumps(errors), "checksum": _checksum(key_bytes, features, ok)}
    with atomic_path(path) as tmp:
        save_file({"keys": key_bytes, "features": features, "ok": ok}, str(tmp), metadata=metadata)


def read_shard(path: Path, *, encoder_id: str, dim: int):
    """``(keys S32, features float32 [n, dim], ok bool, messages object)`` or :class:`ShardDamaged`."""
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError) as exc:
        raise ShardDamaged(f"unreadable ({exc})") from None
    if metadata.get("format") != SHARD_FORMAT or metadata.get("encoder_id") != encoder_id:
        raise ShardDamaged(f"written by {metadata.get('encoder_id')!r} in format {metadata.get('format')!r}, "
                           f"expected {encoder_id!r} in {SHARD_FORMAT!r}")
    key_bytes, features, ok = tensors.get("keys"), tensors.get("features"), tensors.get("ok")
    if key_bytes is None or features is None or ok is None or features.ndim != 2 or features.shape[1] != dim:
        raise ShardDamaged(f"tensors {sorted(tensors)} do not hold [n, {dim}] features")
    if _checksum(key_bytes, features, ok) != metadata.get("checksum"):
        raise ShardDamaged("checksum mismatch")
    messages = np.full(len(ok), None, dtype=object)
    for row, message in json.loads(metadata.get("errors", "{}")).items():
        messages[int(row)] = message
    return key_bytes.view("S32").reshape(-1), features, ok.astype(bool), messages


def _checksum(key_bytes: np.ndarray, features: np.ndarray, ok: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (key_bytes, features, ok):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def shard_rows(path: Path) -> int:
    try:
        with safe_open(str(path), framework="np") as handle:
            return int((handle.metadata() or {}).get("rows", 0))
    except (SafetensorError, OSError, ValueError):
        return 0


def max_counter(existing: list[Path]) -> int:
    """Highest shard counter; names also carry a random part that keeps concurrent writers apart."""
    return max((int(m.group(1)) for p in existing if (m := SHARD_NAME.match(p.name))), default=0)


def set_aside(path: Path, reason: str) -> None:
    warnings.warn(f"{path}: damaged feature shard ({reason}); it is ignored, renamed to "
                  f"{path.name}.corrupt, and its items will be encoded again", RuntimeWarning, stacklevel=3)
    try:
        os.replace(path, path.with_name(path.name + ".corrupt"))
    except OSError:
        pass


def remove_stale_temp_files(folder: Path, max_age_seconds: float = _STALE_TEMP_SECONDS) -> None:
    """Delete temporary files left by killed runs (old enough not to belong to a live writer)."""
    if not folder.is_dir():
        return
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > max_age_seconds:
                tmp.unlink()
        except OSError:
            continue
