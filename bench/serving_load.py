"""Load test of `prismrec serve` on loopback: recommendation latency at N concurrent clients,
and the time from `POST /items` until the item shows up in a user's recommendations.

    OMP_NUM_THREADS=1 python bench/serving_load.py runs/vbpr --clients 50 --seconds 20

The load generator (asyncio + httpx) runs on the same machine as the server, so on a small
machine it competes for the cores: the figures are an upper bound on the server's latency.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def start_server(run: Path, state: Path, port: int, options=(), timeout: float = 1200,
                 code: Path = ROOT) -> subprocess.Popen:
    """`prismrec serve RUN` from the checkout ``code`` on ``port`` (extra CLI ``options``), once /health answers."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    env.pop("PRISMREC_API_KEY", None)
    process = subprocess.Popen([sys.executable, "-c", "from prismrec.cli import app; app()", "serve", str(run),
                                "--port", str(port), "--state", str(state), *options], env=env,
                               cwd=code)  # `python -c` puts the working directory first on sys.path
    for _ in range(int(timeout * 10)):
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


async def load(base: str, users: list[str], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(client: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.get(f"/users/{rng.choice(users)}/recommendations", params={"k": 10})
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(client_loop(client, seed) for seed in range(clients)))
    return latencies


def time_to_recommendable(base: str, item_id: str, title: str, plot: str, image: Path | None) -> dict:
    """Seconds from sending POST /items until the item is in its best-reached user's top-k list."""
    started = time.perf_counter()
    files = {"image": (image.name, image.read_bytes())} if image is not None else None
    response = httpx.post(f"{base}/items", data={"item_id": item_id, "title": title,
                                                 "fields": json.dumps({"plot": plot})}, files=files, timeout=60)
    response.raise_for_status()
    best = httpx.get(f"{base}/items/{item_id}/audience", params={"k": 1000, "limit": 1}).json()["users"][0]
    k = max(10, best["rank"])
    recs = httpx.get(f"{base}/users/{best['user_id']}/recommendations", params={"k": k}).json()["items"]
    assert item_id in {r["item_id"] for r in recs}
    return {"seconds": round(time.perf_counter() - started, 3), "best_rank": best["rank"],
            "reached_in_top10": response.json()["audience"]["count"]}


def measure_load(base: str, args) -> dict:
    users = json.loads((args.run / "users.json").read_text())
    asyncio.run(load(base, users, args.clients, 2.0))  # warm-up
    latencies = np.array(asyncio.run(load(base, users, args.clients, args.seconds))) * 1000
    return {"clients": args.clients, "seconds": args.seconds, "requests": len(latencies),
            "requests_per_second": round(len(latencies) / args.seconds, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--post-only", action="store_true", help="only time POST /items (no load test)")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = Path(tempfile.mkdtemp(prefix="prismrec-bench-"))
    server = start_server(args.run, state, port)
    base = f"http://127.0.0.1:{port}"
    try:
        report = {} if args.post_only else measure_load(base, args)
        health = httpx.get(f"{base}/health").json()
        if health["accepts_new_items"]:
            catalog = pd.read_parquet(args.run / "catalog.parquet")
            poster = next((Path(p) for p in catalog.get("media:image", []) if p and Path(p).is_file()), None)
            plot = "Rebels fight an evil galactic empire with starships and laser swords."
            report["post_item_text"] = time_to_recommendable(base, "bench-text", "Star Battles", plot, None)
            if poster is not None:
                report["post_item_image"] = time_to_recommendable(base, "bench-image", "Star Battles 2", plot, poster)
        print(json.dumps(report, indent=2))
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
