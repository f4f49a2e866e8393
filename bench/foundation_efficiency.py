"""Efficiency of the tuning modes: trainable parameters, seconds per epoch, peak memory.

    OMP_NUM_THREADS=1 .venv/bin/python bench/foundation_efficiency.py --out /tmp/efficiency.json

Each mode (full, adapters, lora, prompt) trains the same epochs on the same Beauty users
in its own process, so that the peak memory (RSS) of one mode is not the peak of another.
Seconds per epoch are wall and process CPU seconds of the training epochs only (no
validation: ``--validation-users 0``, the default, fits without validation data); the
peak memory is the peak RSS during training (data loading and id building excluded).
``--lock FILE`` runs each mode under ``flock FILE``, so that a shared machine's timed
slots are taken one mode at a time.

Example:
    >>> # .venv/bin/python bench/foundation_efficiency.py --max-users 200 --out /tmp/e.json  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("full", "adapters", "lora", "prompt")


def run_mode(args) -> dict:
    """Train one mode in this process and return its figures."""
    sys.path.insert(0, str(ROOT))
    import torch

    from prismrec.data.loaders.p5 import load_p5_sequences
    from prismrec.data.splits import leave_one_out
    from prismrec.models import FoundationRecommender

    torch.set_num_threads(args.threads)
    data = load_p5_sequences(args.data).interactions
    split = leave_one_out(data.subset(data.user_index < args.max_users))
    model = FoundationRecommender(preset=args.preset, tuning=args.mode, epochs=args.epochs,
                                  validation_users=args.validation_users, patience=args.epochs,
                                  dropout=args.dropout, batch_size=args.batch_size, seed=0)
    model.fit(split.train, split.valid if args.validation_users > 0 else None)
    return {"mode": args.mode, "preset": args.preset, "users": args.max_users, "dropout": args.dropout,
            "train_interactions": len(split.train.user_index), **model.tuning_report_,
            "epoch_seconds": model.epoch_seconds_, "epoch_cpu_seconds": model.epoch_cpu_seconds_,
            "seconds_per_epoch": sum(model.epoch_seconds_) / len(model.epoch_seconds_),
            "cpu_seconds_per_epoch": sum(model.epoch_cpu_seconds_) / len(model.epoch_cpu_seconds_),
            "peak_memory_mb": model.peak_memory_mb_, "memory_at_start_mb": model.memory_at_start_mb_,
            "training_memory_mb": model.peak_memory_mb_ - model.memory_at_start_mb_, "loss_history": model.loss_history_,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "amazon-p5" / "beauty"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--max-users", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--validation-users", type=int, default=0,
                        help="users early stopping evaluates after each epoch (0: no validation, not timed anyway)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--lock", help="run each mode under `flock LOCK` (timed slots on a shared machine)")
    parser.add_argument("--mode", choices=MODES, help="internal: train one mode and print its JSON")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    figures = []
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {list(MODES)}")
    for mode in modes:
        command = [sys.executable, __file__, *sys.argv[1:], "--mode", mode]
        if args.lock:
            command = ["flock", args.lock, *command]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps({k: figures[-1][k] for k in ("mode", "trainable_share", "seconds_per_epoch",
                                                       "cpu_seconds_per_epoch", "peak_memory_mb",
                                                       "training_memory_mb",
                                                       "load_average")}), flush=True)
    full = next((f for f in figures if f["mode"] == "full"), None)
    for figure in figures if full else []:
        figure["speedup_vs_full"] = full["seconds_per_epoch"] / figure["seconds_per_epoch"]
        figure["cpu_speedup_vs_full"] = full["cpu_seconds_per_epoch"] / figure["cpu_seconds_per_epoch"]
    sys.path.insert(0, str(ROOT))
    from prismrec.io import atomic_write_json

    atomic_write_json(args.out, {"command": " ".join(sys.argv), "modes": figures})


if __name__ == "__main__":
    main()
