"""SQLite persistence: WAL, durable acknowledgements, and a server killed with SIGKILL mid-burst."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from serving_bundles import id_only_bundle
from prismrec.serving.store import ServingStore

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_wal_mode_and_duplicate_items(tmp_path):
    store = ServingStore(tmp_path / "s.sqlite3")
    assert store.add_interaction("u1", "i2", event="like", timestamp=5.0) == 1
    assert store.add_item("new", {"title": "Heat"}, "ab" * 32) == 1
    with pytest.raises(ValueError, match="item 'new' already exists"):
        store.add_item("new", {"title": "again"})
    store.close()
    reopened = ServingStore(tmp_path / "s.sqlite3")
    [event] = reopened.interactions()
    assert (event.seq, event.user_id, event.item_id, event.event, event.timestamp) == (1, "u1", "i2", "like", 5.0)
    assert [(i.item_id, i.fields, i.image_sha256) for i in reopened.items()] == [("new", {"title": "Heat"}, "ab" * 32)]
    assert reopened.integrity_check() == "ok"
    with sqlite3.connect(tmp_path / "s.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PRISMREC_API_KEY", None)
    process = subprocess.Popen([sys.executable, "-c", "from prismrec.cli import app; app()", "serve", str(run),
                                "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()}")
    process.kill()
    raise RuntimeError("server did not start within 60 s")


def burst(port: int, worker: int, acknowledged: list, stop: threading.Event) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for n in range(100_000):
            if stop.is_set():
                return
            event = {"user_id": f"w{worker}-{n}", "item_id": f"i{n % 30}"}
            try:
                response = client.post("/interactions", json=event)
            except httpx.HTTPError:
                return  # the server died: this write was never acknowledged
            if response.status_code == 201:
                acknowledged.append((response.json()["seq"], event["user_id"], event["item_id"]))


def test_sigkill_during_a_burst_loses_no_acknowledged_write(tmp_path):
    run = id_only_bundle(tmp_path / "run")
    port = free_port()
    server = start_server(run, port)
    acknowledged: list = []
    stop = threading.Event()
    workers = [threading.Thread(target=burst, args=(port, w, acknowledged, stop)) for w in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.send_signal(signal.SIGKILL)  # mid-burst: the workers are still writing
    server.wait()
    stop.set()
    for worker in workers:
        worker.join()
    assert len(acknowledged) >= 150
    server = start_server(run, port)
    try:
        for seq, user, item in acknowledged[::10]:  # through the API, after the restart
            history = httpx.get(f"http://127.0.0.1:{port}/users/{user}").json()["history"]
            assert [h["item_id"] for h in history] == [item]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    store = ServingStore(run / "state" / "serving.sqlite3")
    stored = {(e.seq, e.user_id, e.item_id) for e in store.interactions()}
    assert set(acknowledged) <= stored
    assert store.integrity_check() == "ok"
