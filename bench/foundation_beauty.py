"""Sequential recommendation on Amazon Beauty (P5 files, leave-one-out, full ranking):
SASRec and the foundation model, evaluated by the one shared evaluator.

    OMP_NUM_THREADS=1 .venv/bin/python bench/foundation_beauty.py --out /tmp/beauty-run

Models run one after another; ``results.json`` is rewritten (atomically) after each, so
a partial run still reports what finished. The foundation model checkpoints every
epoch under ``--out`` and resumes when the command is run again.

Example:
    >>> # .venv/bin/python bench/foundation_beauty.py --out /tmp/b --sasrec-epochs 2 --foundation-epochs 1  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prismrec.data.loaders.p5 import load_p5_sequences  # noqa: E402
from prismrec.data.splits import leave_one_out  # noqa: E402
from prismrec.evaluation.evaluator import Evaluator  # noqa: E402
from prismrec.io import atomic_write_json  # noqa: E402
from prismrec.models import FoundationRecommender, SASRec  # noqa: E402
from prismrec.provenance import run_provenance  # noqa: E402

METRICS = ("hit@5", "ndcg@5", "hit@10", "ndcg@10")


def evaluate(name: str, model, split, fit_seconds: float, results: dict, out: Path) -> None:
    started = time.perf_counter()
    result = Evaluator(ks=(5, 10), metrics=("hit", "ndcg")).evaluate(model, split.test, exclude=[split.train, split.valid])
    result.save(out / f"{name}.per_user.npz")
    results["models"][name] = {
        **{key: result[key] for key in METRICS},
        "fit_seconds": round(fit_seconds, 1), "evaluate_seconds": round(time.perf_counter() - started, 1),
        "best_epoch": getattr(model, "best_epoch_", None), "params": model.get_params(),
        "epoch_seconds": getattr(model, "epoch_seconds_", None), "tuning": getattr(model, "tuning_report_", None),
        "id_scheme": getattr(model, "id_scheme_label_", None),
    }
    atomic_write_json(out / "results.json", results)
    print(name, {key: round(result[key], 4) for key in METRICS}, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "amazon-p5" / "beauty"))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--sasrec-epochs", type=int, default=25)
    parser.add_argument("--foundation-epochs", type=int, default=2)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--id-scheme", default="collaborative")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-users", type=int, default=None, help="Keep only the first N users (smoke runs).")
    parser.add_argument("--only", choices=("sasrec", "foundation"), default=None,
                        help="Run one model; results of the other already in OUT/results.json are kept. With "
                             "--only foundation and a checkpoint of --foundation-epochs epochs in OUT, the model "
                             "resumes after its last epoch and is only evaluated.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_p5_sequences(args.data).interactions
    if args.max_users:
        data = data.subset(data.user_index < args.max_users)
    split = leave_one_out(data)
    previous = json.loads((args.out / "results.json").read_text()) if (args.out / "results.json").is_file() else {}
    results = {"data": args.data, "max_users": args.max_users, "split": "leave_one_out (test input includes the validation item)",
               "protocol": "full ranking over all items", "threads": args.threads,
               "arguments": {key: str(value) for key, value in vars(args).items()}, "provenance": run_provenance(),
               "models": previous.get("models", {}) if args.only else {}}
    runs = [
        ("sasrec-ce", SASRec(loss="ce", epochs=args.sasrec_epochs, patience=3, dropout=0.3)),
        (f"foundation-{args.preset}-{args.id_scheme}", FoundationRecommender(
            preset=args.preset, id_scheme=args.id_scheme, epochs=args.foundation_epochs, patience=2,
            validation_users=1000, beam_size=20, learning_rate=2e-3, batch_size=64,
            checkpoint_dir=str(args.out / "foundation-checkpoint"))),
    ]
    for name, model in runs:
        if args.only and not name.startswith(args.only):
            continue
        started = time.perf_counter()
        model.fit(split.train, split.valid, progress=True)
        evaluate(name, model, split, time.perf_counter() - started, results, args.out)


if __name__ == "__main__":
    main()
