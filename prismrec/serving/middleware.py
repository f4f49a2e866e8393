"""ASGI middleware: a request-body size limit and request metrics (counts, latency histograms).

Metrics are written in the Prometheus text format by hand: ``prometheus_client`` is not
among PrismRec's dependencies, and a counter plus a fixed-bucket histogram per route is
a few lines. Routes are recorded by their template (``/users/{user_id}/recommendations``),
so ids never multiply the series.
"""
from __future__ import annotations

import bisect
import json
import threading
import time
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a JSON 413, by header and while streaming."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await too_large(send, self.max_bytes)
        received, refused, started = 0, False, False

        async def limited_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):  # the app's own reply to the aborted read is replaced by a 413
            nonlocal started
            if not refused:
                started = True
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        if refused and not started:
            await too_large(send, self.max_bytes)


class BodyTooLarge(Exception):
    pass


async def too_large(send, max_bytes: int) -> None:
    body = json.dumps({"error": "body_too_large",
                       "detail": f"the request body is over the limit of {max_bytes} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Metrics:
    """Thread-safe request counts and latency histograms keyed by (method, route, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple, int] = defaultdict(int)
        self.buckets: dict[tuple, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1))
        self.sums: dict[tuple, float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.counts[(method, route, status)] += 1
            self.buckets[(method, route)][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.sums[(method, route)] += seconds

    def render(self) -> str:
        """The Prometheus text exposition format."""
        lines = ["# HELP prismrec_requests_total HTTP requests by method, route and status.",
                 "# TYPE prismrec_requests_total counter"]
        with self._lock:
            for (method, route, status), count in sorted(self.counts.items()):
                lines.append(f'prismrec_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}')
            lines += ["# HELP prismrec_request_seconds HTTP request latency.",
                      "# TYPE prismrec_request_seconds histogram"]
            for (method, route), counts in sorted(self.buckets.items()):
                labels = f'method="{method}",route="{route}"'
                total = 0
                for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), counts):
                    total += count
                    lines.append(f'prismrec_request_seconds_bucket{{{labels},le="{bound}"}} {total}')
                lines.append(f"prismrec_request_seconds_sum{{{labels}}} {self.sums[(method, route)]:.6f}")
                lines.append(f"prismrec_request_seconds_count{{{labels}}} {total}")
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Time every HTTP request and record it under its route template."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static") else "other")
            self.metrics.observe(scope["method"], template, status[0], time.perf_counter() - started)
