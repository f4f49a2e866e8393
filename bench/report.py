"""Markdown report for ``run_all.py``: figures, ratios against the targets, memory.

Example:
    >>> ratio_row("BPR", {"seconds_per_epoch": 1.0}, {"seconds_per_epoch": 2.0}, "seconds_per_epoch", 1.0)[-2:]
    ['2.00x', 'met']
    >>> ratio_row("eval", {"eval_seconds": 1.0}, {"eval_seconds": 5.0}, "eval_seconds", 10.0)[-2:]
    ['5.00x', 'MISSED']
"""
from __future__ import annotations

import datetime
from pathlib import Path

# (label, task, figure key, peer library, target ratio peer/ours, unit)
COMPARISONS = [
    ("BPR epoch (64 factors, n_train updates)", "bpr", "seconds_per_epoch", "cornac", 1.0, "s"),
    ("BPR epoch, reference: implicit", "bpr", "seconds_per_epoch", "implicit", None, "s"),
    ("Full-ranking Recall@20 + NDCG@20, all test users", "eval", "eval_seconds", "cornac", 10.0, "s"),
    ("LightGCN epoch (64-d, 3 layers, batch 2048)", "lightgcn", "seconds_per_epoch", "recbole", 5.0, "s"),
    ("VBPR epoch (512-d features, 32+32 factors, batch 1024)", "vbpr", "seconds_per_epoch", "cornac", 3.0, "s"),
]
CPU_KEYS = {"seconds_per_epoch": "cpu_seconds_per_epoch", "eval_seconds": "eval_cpu_seconds"}


def _find(results: list[dict], library: str, task: str) -> dict | None:
    for record in results:
        if record.get("library") == library and record.get("task") == task:
            return record
    return None


def _figure(record: dict | None, key: str) -> str:
    if record is None:
        return "not run"
    if "error" in record:
        return "failed"
    value = record.get(key)
    return "n/a" if value is None else f"{value:.3f}"


def ratio_row(label: str, ours: dict | None, peer: dict | None, key: str, target: float | None) -> list[str]:
    """``[label, ours, peer, cpu ours, cpu peer, cpu ratio, ratio, verdict]``; ratio = peer time / our time.

    The verdict is on wall time; the CPU-time ratio is shown beside it.
    """
    cpu_key = CPU_KEYS[key]
    row = [label, _figure(ours, key), _figure(peer, key), _figure(ours, cpu_key), _figure(peer, cpu_key)]
    try:
        row.append(f"{peer[cpu_key] / ours[cpu_key]:.2f}x")
    except (TypeError, KeyError, ZeroDivisionError):
        row.append("-")
    try:
        ratio = peer[key] / ours[key]
    except (TypeError, KeyError, ZeroDivisionError):
        return row + ["-", "no figure" if target else "reference"]
    verdict = "reference" if target is None else ("met" if ratio >= target else "MISSED")
    return row + [f"{ratio:.2f}x", verdict]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]


def write_report(path: Path, *, results: list[dict], meta: dict, machine: dict, command: str,
                 started: datetime.datetime) -> None:
    lines = [
        f"# PrismRec core benchmark, {started:%Y-%m-%d %H:%M}",
        "",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['os']}, Python {machine['python']}",
        "- Threads: 2 for every library (torch.set_num_threads(2), OMP/MKL/OPENBLAS_NUM_THREADS=2, "
        "Cornac BPR and implicit num_threads=2); libraries run one after another.",
        f"- Command: `{command}` (after `bash bench/setup_peers.sh`)",
        f"- Data: synthetic (bench/make_synthetic.py, seed {meta['seed']}): {meta['n_users']:,} users x "
        f"{meta['n_items']:,} items x {meta['n_interactions']:,} unique interactions, Zipf(s={meta['zipf_exponent']}) "
        f"item popularity (top item {meta['top1_item_share']:.1%}, top 1% of items {meta['top1pct_items_share']:.1%} "
        f"of interactions), >= {meta['min_per_user']} per user. Per-user random 80/20 split with "
        f"prismrec.data.splits.per_user_ratio: {meta['n_train']:,} train / {meta['n_test']:,} test "
        f"({meta['n_test_users']:,} test users). Item features float32 [{meta['n_items']}, {meta['feature_dim']}].",
        "",
        "## Speed (wall seconds; ratio = peer time / PrismRec time, higher is better for PrismRec)",
        "",
    ]
    header = ["measure", "PrismRec s", "peer s", "PrismRec CPU s", "peer CPU s", "CPU ratio", "wall ratio",
              "target (on wall ratio)"]
    rows = []
    for label, task, key, peer, target, _unit in COMPARISONS:
        row = ratio_row(f"{label} vs {peer}", _find(results, "prismrec", task), _find(results, peer, task), key, target)
        row[-1] = f"{row[-1]} (>= {target:g}x)" if target else row[-1]
        rows.append(row)
    lines += _table(header, rows)
    lines += ["", "CPU s = process user + system time over the same interval (all threads).", ""]
    lines += _eval_section(results) + _memory_section(results) + _errors_section(results)
    lines += ["## Raw records", "", "```"] + [str(r) for r in results] + ["```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _eval_section(results: list[dict]) -> list[str]:
    rows = []
    for library in ("prismrec", "cornac"):
        record = _find(results, library, "eval")
        if record and "error" not in record:
            rows.append([library, record.get("n_users_evaluated"), record.get("n_items_ranked"),
                         f"{record.get('recall@20', float('nan')):.5f}", f"{record.get('ndcg@20', float('nan')):.5f}",
                         record.get("model", "own 1-epoch BPR")])
    if not rows:
        return []
    return ["## Evaluation check (same model in both evaluators: the metrics must agree)", ""] + _table(
        ["evaluator", "users", "items ranked", "Recall@20", "NDCG@20", "model"], rows) + [""]


def _memory_section(results: list[dict]) -> list[str]:
    rows = [[r.get("library"), r.get("task"), r.get("version", ""), r.get("peak_rss_mb", "-"),
             r.get("process_seconds", "-"), r.get("load_average", "-"), r.get("reused_from", "this run")]
            for r in results if "error" not in r]
    return ["## Peak memory and process time (one process per library and task)", ""] + _table(
        ["library", "task", "version", "peak RSS MiB (ru_maxrss)", "process wall s", "load average at end", "run"],
        rows) + [""]


def _errors_section(results: list[dict]) -> list[str]:
    errors = [f"- {r.get('library')} {r.get('task')}: {r['error']}" for r in results if "error" in r]
    return (["## Failures", ""] + errors + [""]) if errors else []
