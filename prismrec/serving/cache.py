"""Encoded responses of the hot read path, each kept while the state it was computed from is unchanged.

A recommendation list depends on the user's vector and seen items and on the catalogue, so
:class:`ResponseCache` stores it with the engine's version of both
(:meth:`~prismrec.serving.engine.ServingEngine.version`): feedback from a user or a new item
changes the version, and the stale entry is recomputed on its next request, never served.
The cache is an LRU bounded in bytes; it lives on the event loop (no lock).

Example:
    >>> cache = ResponseCache(max_bytes=100)
    >>> cache.put(("u1", 10, True), (0, 0, 0), b'{"items": []}')
    >>> cache.get(("u1", 10, True), (0, 0, 0))
    b'{"items": []}'
    >>> cache.get(("u1", 10, True), (0, 0, 1)) is None  # the user posted feedback since
    True
"""
from __future__ import annotations

from collections import OrderedDict


class ResponseCache:
    """LRU of ``key -> (version, body)``, at most ``max_bytes`` of bodies; ``max_bytes=0`` disables it."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self.entries: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key, version) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key, version, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        self.entries[key] = (version, body)
        self.size += len(body)
        while self.size > self.max_bytes:
            _, (_, evicted) = self.entries.popitem(last=False)
            self.size -= len(evicted)
