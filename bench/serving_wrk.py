"""HTTP load test of `prismrec serve` with wrk: p50/p99 and requests/s at N clients, and the CPU each side took.

    apt-get install -y wrk      # Debian's wrk 4 (the load generator; not a Python package)
    flock /work/notes/bench.lock python bench/serving_wrk.py /work/runs-serving/vbpr --clients 50 --seconds 20
    python bench/serving_wrk.py RUN --serve-option=--http=h11 --serve-option=--response-cache=0   # the old stack

The server (`prismrec serve RUN`, one process, `OMP_NUM_THREADS=1`) and wrk (`-t1`) share the
machine, so the report gives both processes' CPU seconds over the timed window: on a 2-core
machine the load generator's share is CPU the server did not get. `--profile FILE` also
samples the server with py-spy during the window and writes the hottest functions
(own time and total time) to FILE. `--recall N` fetches N users' lists over HTTP after the
load and compares them with exact top-k from the bundle's vectors (for the ANN path).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from serving_load import ROOT, start_server, stop_server

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(base: str, users_file: Path, clients: int, seconds: float, threads: int) -> str:
    command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{round(seconds)}s", "--latency",
               "-s", str(ROOT / "bench" / "serving_wrk.lua"), base, "--", str(users_file)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def parse_wrk(text: str) -> dict:
    def millis(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
        return round(float(number) * UNITS[unit], 2)

    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M))
    requests = re.search(r"(\d+) requests in", text).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)$", text, re.M)
    return {"requests": int(requests), "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1]),
            **{f"p{p}_ms": millis(v) for p, v in percentiles.items()},
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None}


def summarise_profile(raw: Path, top: int = 25) -> str:
    """Own and total sample counts per function from py-spy's collapsed stacks."""
    own, total, samples = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \(.*?:\d+\)$", lambda m: m.group(0).split(":")[0] + ")", f) for f in stack.split(";")]
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    lines = [f"{samples} samples", "", "own%  function"]
    lines += [f"{100 * n / samples:5.1f} {frame}" for frame, n in own.most_common(top)]
    lines += ["", "total%  function"] + [f"{100 * n / samples:5.1f} {frame}" for frame, n in total.most_common(top)]
    return "\n".join(lines)


def http_recall(base: str, run: Path, users: list[str], k: int = 10) -> dict:
    """recall@k of the served lists against exact top-k over the bundle's vectors, seen items excluded."""
    import numpy as np
    import torch

    from prismrec.serving.bundle import load_bundle
    from prismrec.serving.factors import factor_view
    from prismrec.serving.index import ExactIndex, recall_at_k

    bundle = load_bundle(run)
    view = factor_view(bundle.model)
    rows = bundle.users.to_index(users, what="user")
    matrix = bundle.train.matrix
    seen = [set(matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]].tolist()) for u in rows]
    exact = ExactIndex(view.item_vectors).search(view.user_vectors[torch.as_tensor(rows)], k, seen)[0]
    with httpx.Client(base_url=base, timeout=30) as client:
        served = np.array([bundle.items.to_index([r["item_id"] for r in client.get(
            f"/users/{user}/recommendations", params={"k": k}).json()["items"]]) for user in users])
    return {"users": len(users), f"recall_at_{k}": round(recall_at_k(served, exact), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--warm-up", type=int, default=3)
    parser.add_argument("--serve-option", action="append", default=[], help="passed to `prismrec serve`")
    parser.add_argument("--server-code", type=Path, default=ROOT,
                        help="checkout whose prismrec the server runs (e.g. main's, for a before/after)")
    parser.add_argument("--profile", type=Path, help="sample the server with py-spy; write a summary here")
    parser.add_argument("--recall", type=int, default=0, help="users whose served lists are checked vs exact")
    args = parser.parse_args()
    port, state = free_port(), Path(tempfile.mkdtemp(prefix="prismrec-wrk-"))
    users_file = state / "users.txt"
    users = json.loads((args.run / "users.json").read_text())
    users_file.write_text("\n".join(users) + "\n")
    started = time.perf_counter()
    server = start_server(args.run, state, port, args.serve_option, code=args.server_code)
    base = f"http://127.0.0.1:{port}"
    report = {"run": str(args.run), "server_code": str(args.server_code), "serve_options": args.serve_option,
              "clients": args.clients,
              "seconds": args.seconds, "wrk_threads": args.wrk_threads,
              "server_start_s": round(time.perf_counter() - started, 1), "cores": os.cpu_count(),
              "load_average_before": os.getloadavg()[0]}
    try:
        run_wrk(base, users_file, args.clients, args.warm_up, args.wrk_threads)
        profiler = None
        if args.profile:
            raw = state / "profile.txt"
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")  # pip install py-spy
            profiler = subprocess.Popen([py_spy, "record", "-p", str(server.pid), "-d", str(int(args.seconds)),
                                         "-r", "200", "-f", "raw", "-o", str(raw), "--nonblocking"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server_before, wrk_before = cpu_seconds(server.pid), children_cpu()
        text = run_wrk(base, users_file, args.clients, args.seconds, args.wrk_threads)
        report["server_cpu_s"] = round(cpu_seconds(server.pid) - server_before, 1)
        report["wrk_cpu_s"] = round(children_cpu() - wrk_before, 1)
        report.update(parse_wrk(text))
        if profiler is not None:
            profiler.wait(timeout=120)
            args.profile.write_text(summarise_profile(raw))
        if args.recall:
            report["http_recall"] = http_recall(base, args.run, users[:args.recall])
        report["load_average_after"] = os.getloadavg()[0]
        print(json.dumps(report, indent=2))
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
