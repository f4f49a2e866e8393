"""Encoded responses of the hot read path, each kept while the state it was computed from is unchanged.

A recommendation list depends on the user's vector and seen items and on the catalogue, so
:class:`ResponseCache` stores it with the engine's version of both
(:meth:`~prismrec.serving.engine.ServingEngine.version`): feedback from a user or a new item
changes the version, and the stale entry is recomputed on its next request, never served.
The cache is an LRU bounded in bytes; it lives on the event loop (no lock).

:class:`FastRecommendations` is the ASGI middleware in front of the app that answers
``GET /users/{user_id}/recommendations`` without FastAPI's routing and parameter solving (about
nine tenths of a request's CPU), for the plain queries it reads exactly as FastAPI does (``k`` in
range and ``exclude_seen``, each at most once) and known users. Everything else (an unknown user, a
``k`` out of range, any other query) goes on to the app, whose route gives the same answers through
the same :func:`recommendations_body` and every error message.

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

import orjson


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


TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}  # some of pydantic's bool strings


def read_query(query: bytes) -> tuple[int, bool] | None:
    """``(k, exclude_seen)`` from a plain query string, defaults 10 and True; ``None`` for anything else."""
    k, exclude_seen, names = 10, True, set()
    for part in query.decode("latin-1").split("&") if query else ():
        name, _, value = part.partition("=")
        if name in names:
            return None
        names.add(name)
        if name == "k" and value.isascii() and value.isdigit():
            k = int(value)
        elif name == "exclude_seen" and value in TRUE | FALSE:
            exclude_seen = value in TRUE
        else:
            return None
    return k, exclude_seen


def json_bytes(content) -> bytes:
    """Compact UTF-8 JSON, byte for byte what FastAPI's JSONResponse writes for these bodies.

    orjson, because the standard library's encoder was 0.03 ms of a ~0.3 ms uncached request
    (20x orjson's time). Scores are always finite here (padding is dropped before encoding).
    """
    return orjson.dumps(content)


def recommendations_body(engine, cache: ResponseCache, user_id: str, k: int, exclude_seen: bool) -> bytes:
    """The JSON of ``GET /users/{user_id}/recommendations``: from the cache, else computed and cached."""
    key, version = (user_id, k, exclude_seen), engine.version(user_id)
    body = cache.get(key, version)
    if body is None:
        items = engine.recommend(user_id, k, exclude_seen=exclude_seen)
        body = json_bytes({"user_id": user_id, "k": k, "exclude_seen": exclude_seen, "items": items})
        cache.put(key, version, body)
    return body


class FastRecommendations:
    """ASGI middleware: the recommendations route for plain requests, before routing (see the module)."""

    def __init__(self, app, cache: ResponseCache, engine, max_k: int, max_id_length: int, route=None) -> None:
        self.app, self.cache, self.engine, self.route = app, cache, engine, route
        self.max_k, self.max_id_length = max_k, max_id_length

    async def __call__(self, scope, receive, send):
        body = self._answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if body is None:
            return await self.app(scope, receive, send)
        scope["route"] = self.route  # for the metrics, as if routed
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope) -> bytes | None:
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[1] != "users" or parts[3] != "recommendations":
            return None
        user_id, query = parts[2], read_query(scope.get("query_string", b""))
        if query is None or not 1 <= query[0] <= self.max_k or not 1 <= len(user_id) <= self.max_id_length:
            return None
        try:
            return recommendations_body(self.engine, self.cache, user_id, *query)
        except Exception:  # noqa: BLE001 - an unknown user or any error: the app answers it, with its message
            return None
