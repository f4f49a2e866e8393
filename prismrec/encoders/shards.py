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
import zlib
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

    A 64-digit hex hash (sha256, as :meth:`Encoder.content_hash` gives) is used as it is;
    any other string is hashed with sha256 first.

    Example:
        >>> content_keys(["abc", "abc", "xyz"]).shape, content_keys(["abc"]).dtype
        ((3,), dtype('S32'))
    """
    hashes = [str(h) for h in content_hashes]
    try:  # fast path: every hash is 64 hex digits
        digests = bytes.fromhex("".join(hashes)) if all(len(h) == 64 for h in hashes) else None
    except ValueError:
        digests = None
    if digests is None:
        digests = b"".join(_key(h) for h in hashes)
    return np.frombuffer(digests, dtype="S32").copy() if digests else np.empty(0, dtype="S32")


def _key(content_hash: str) -> bytes:
    if len(content_hash) == 64:
        try:
            return bytes.fromhex(content_hash)
        except ValueError:
            pass
    return hashlib.sha256(content_hash.encode("utf-8")).digest()


def _prefix(keys: np.ndarray) -> np.ndarray:
    """First 8 bytes of each 32-byte key as big-endian uint64 (sorts like the keys)."""
    raw = np.ascontiguousarray(keys.astype("S32")).view(np.uint8).reshape(-1, 32)[:, :8]
    return np.ascontiguousarray(raw).view(">u8").reshape(-1).astype(np.uint64)


class ShardTable:
    """Everything stored for one encoder: the shards' arrays plus one sorted key index.

    Vectors stay in the arrays they were read into (no copy of the whole store); the index
    maps each key, in sorted order, to its shard and row. ``find(keys)`` is one
    ``np.searchsorted`` and returns index positions (-1 where a key is not stored) for
    :meth:`features_at`, :meth:`ok_at` and :meth:`message_at`. Shards added with
    :meth:`add` join the index lazily, at the next lookup.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.damaged: list[tuple[Path, str]] = []  # shards ignored while loading
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # keys, part, row
        self._key_prefixes = np.empty(0, dtype=np.uint64)

    def add(self, keys: np.ndarray, features: np.ndarray, ok: np.ndarray, messages: np.ndarray) -> None:
        self._parts.append((keys, features, ok, messages))
        self._index = None

    def _build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._index is None:
            sizes = [len(part[0]) for part in self._parts]
            keys = np.concatenate([part[0] for part in self._parts]) if self._parts else np.empty(0, "S32")
            part = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
            row = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes]) if sizes else part.astype(np.int64)
            if not (len(sizes) <= 1 and np.all(keys[1:] > keys[:-1])):  # a compacted shard is sorted already
                # a key stored twice (e.g. by two concurrent runs): the last shard wins
                _, first_in_reversed = np.unique(keys[::-1], return_index=True)
                pick = len(keys) - 1 - first_in_reversed
                keys, part, row = keys[pick], part[pick], row[pick]
            self._index = (keys, part, row)
            self._key_prefixes = _prefix(keys)
        return self._index

    def __len__(self) -> int:
        return len(self._build()[0])

    @property
    def keys(self) -> np.ndarray:
        """Stored keys, sorted and unique."""
        return self._build()[0]

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Index position of each key, -1 where the key is not stored (vectorised).

        The search runs on the keys' first 8 bytes as integers (much faster than on
        32-byte strings); full keys are then compared, so a shared prefix never matches
        the wrong key, and those rare cases are searched again on the full key.
        """
        stored, prefixes = self.keys, self._key_prefixes
        if len(stored) == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        wanted = _prefix(keys)
        position = np.minimum(np.searchsorted(prefixes, wanted), len(stored) - 1)
        hit = stored[position] == keys
        shared_prefix = ~hit & (prefixes[position] == wanted)
        if shared_prefix.any():
            again = np.minimum(np.searchsorted(stored, keys[shared_prefix]), len(stored) - 1)
            position[shared_prefix], hit[shared_prefix] = again, stored[again] == keys[shared_prefix]
        return np.where(hit, position, -1).astype(np.int64)

    def features_at(self, positions: np.ndarray) -> np.ndarray:
        """float32 ``[len(positions), dim]`` vectors at index positions (gathered shard by shard)."""
        _, part, row = self._build()
        if len(self._parts) == 1:
            return np.take(self._parts[0][1], row[positions], axis=0)
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        which = part[positions]
        for number in np.unique(which):
            selected = which == number
            out[selected] = self._parts[number][1][row[positions[selected]]]
        return out

    def ok_at(self, positions: np.ndarray) -> np.ndarray:
        _, part, row = self._build()
        ok = np.concatenate([p[2] for p in self._parts]) if self._parts else np.zeros(0, bool)
        offsets = np.cumsum([0] + [len(p[2]) for p in self._parts])
        return ok[offsets[part[positions]] + row[positions]]

    def message_at(self, position: int) -> str | None:
        _, part, row = self._build()
        return self._parts[part[position]][3][row[position]]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(keys, features, ok, messages)`` of every stored key, in key order (for compaction)."""
        keys, part, row = self._build()
        everything = np.arange(len(keys))
        messages = np.array([self._parts[p][3][r] for p, r in zip(part, row)], dtype=object)
        return keys, self.features_at(everything), self.ok_at(everything), messages


class ShardDamaged(Exception):
    """A shard file that cannot be read back as written (truncated, altered, foreign)."""


def write_shard(path: Path, keys: np.ndarray, features: np.ndarray, ok: np.ndarray,
                messages: np.ndarray, *, encoder_id: str) -> None:
    """Write a shard (keys, vectors, ok flags, error messages), sorted by key, via a temporary file."""
    order = np.argsort(keys, kind="stable")
    if np.any(order != np.arange(len(order))):
        keys, features, ok, messages = keys[order], features[order], ok[order], np.asarray(messages)[order]
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
    """CRC-32 over the three arrays (catches truncation and bit rot; not a security check)."""
    crc = 0
    for array in (key_bytes, features, ok):
        crc = zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), crc)
    return f"crc32:{crc:08x}"


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
