"""Run the whole benchmark in one go and write ``bench/results/<date>-core.md``.

    bash bench/setup_peers.sh && .venv/bin/python bench/run_all.py

Builds the synthetic data if missing, then runs every (library, task) in its own
process, one after another (never in parallel), each with its own venv's python,
collects the JSON line each prints, computes PrismRec-vs-peer ratios and checks them
against the targets. ``--only prismrec`` (or cornac, implicit, recbole) reruns a subset
and writes the report from that run alone; ``--reuse <earlier>.json`` fills in the
skipped jobs from an earlier run (marked as reused in the report).

Example:
    >>> # .venv/bin/python bench/run_all.py --skip recbole  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import _common as c  # noqa: E402
from report import write_report  # noqa: E402

PYTHONS = {
    "prismrec": ROOT / ".venv" / "bin" / "python",
    "cornac": HERE / ".envs" / "cornac" / "bin" / "python",
    "recbole": HERE / ".envs" / "recbole" / "bin" / "python",
}
# (library label, venv, script, task); PrismRec's eval must run before Cornac's (shared model)
JOBS = [
    ("prismrec", "prismrec", "run_prismrec.py", "bpr"),
    ("cornac", "cornac", "run_cornac.py", "bpr"),
    ("implicit", "cornac", "run_cornac.py", "implicit-bpr"),
    ("prismrec", "prismrec", "run_prismrec.py", "eval"),
    ("cornac", "cornac", "run_cornac.py", "eval"),
    ("prismrec", "prismrec", "run_prismrec.py", "lightgcn"),
    ("recbole", "recbole", "run_recbole.py", "lightgcn"),
    ("prismrec", "prismrec", "run_prismrec.py", "vbpr"),
    ("cornac", "cornac", "run_cornac.py", "vbpr"),
]


def run_job(venv: str, script: str, task: str, timeout: float) -> dict:
    """Run one runner; returns its JSON record, or an ``error`` record with the stderr tail."""
    command = [str(PYTHONS[venv]), str(HERE / script), task]
    if not PYTHONS[venv].exists():
        return {"error": f"{PYTHONS[venv]} missing: run `bash bench/setup_peers.sh` first"}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(c.RESULT_PREFIX):
            record = json.loads(line[len(c.RESULT_PREFIX):])
            record["process_seconds"] = round(time.perf_counter() - start, 1)
            return record
    tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
    return {"error": f"exit {done.returncode}: " + " | ".join(tail)}


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "os": platform.platform(), "python": platform.python_version()}


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description="PrismRec vs Cornac / implicit / RecBole benchmark")
    parser.add_argument("--only", nargs="*", default=None, help="libraries to run (default: all)")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to run (bpr eval lightgcn vbpr)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per job")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="a previous run's .json: its records fill in the jobs this run skips")
    parser.add_argument("--out", type=Path, default=None, help="report path (default bench/results/<date>-core.md)")
    args = parser.parse_args(argv)
    command = "python bench/run_all.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    if not (c.DATA_DIR / "meta.json").is_file():
        subprocess.run([str(PYTHONS["prismrec"]), str(HERE / "make_synthetic.py")], check=True, cwd=ROOT)
    meta = json.loads((c.DATA_DIR / "meta.json").read_text())
    results = []
    started = datetime.datetime.now()
    for label, venv, script, task in JOBS:
        if (args.only and label not in args.only) or (args.tasks and task.split("-")[-1] not in args.tasks):
            continue
        print(f"[{datetime.datetime.now():%H:%M:%S}] {label} {task} ...", flush=True)
        record = run_job(venv, script, task, args.timeout)
        record.setdefault("library", label)
        record["task"] = task.split("-")[-1]
        print("    " + json.dumps(record), flush=True)
        results.append(record)
    if args.reuse:
        done = {(r.get("library"), r.get("task")) for r in results}
        for record in json.loads(args.reuse.read_text())["results"]:
            if (record.get("library"), record.get("task")) not in done:
                results.append({**record, "reused_from": args.reuse.name})
    out = args.out or HERE / "results" / f"{started:%Y-%m-%d}-core.md"
    raw = out.with_suffix(".json")
    raw.write_text(json.dumps({"machine": machine(), "data": meta, "results": results}, indent=1) + "\n")
    write_report(out, results=results, meta=meta, machine=machine(), command=command, started=started)
    print(f"wrote {out} and {raw}")
    return out


if __name__ == "__main__":
    main()
