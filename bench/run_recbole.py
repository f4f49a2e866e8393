"""RecBole 1.2.1 side of the benchmark: LightGCN seconds per training epoch.

Run with the RecBole venv (``bash bench/setup_peers.sh`` creates it):

    bench/.envs/recbole/bin/python bench/run_recbole.py lightgcn

Timed: ``Trainer._train_epoch`` (RecBole's own training loop: its pairwise data loader
with uniform negative sampling, and per batch a full 3-layer propagation, BPR loss,
L2 loss, backward, Adam step) for ``TIMED_EPOCHS`` epochs after one warm-up epoch.
Not timed: building the RecBole dataset, the normalised adjacency, model and trainer
(reported separately as ``setup_seconds``). No validation runs.

Example:
    >>> # prints: BENCH_RESULT {"library": "recbole", "task": "lightgcn", "seconds_per_epoch": ...}
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402  (sets thread environment variables first)

TIMED_EPOCHS = 1


def build(workdir: str):
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    config = Config(
        model="LightGCN",
        dataset="synth",
        config_dict={
            "data_path": str(c.DATA_DIR / "recbole"),
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id"]},
            "embedding_size": c.FACTORS, "n_layers": c.LIGHTGCN_LAYERS, "reg_weight": 1e-4,
            "train_batch_size": c.LIGHTGCN_BATCH, "learning_rate": c.LIGHTGCN_LR, "epochs": 1,
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            "device": "cpu", "use_gpu": False, "seed": c.SEED, "reproducibility": True,
            "checkpoint_dir": os.path.join(workdir, "saved"), "show_progress": False,
            "worker": 0, "state": "ERROR", "log_wandb": False,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    c.set_torch_threads()
    dataset = create_dataset(config)
    train_data, _valid, _test = data_preparation(config, dataset)
    model = LightGCN(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    return config, dataset, train_data, model, trainer


def lightgcn() -> None:
    import recbole

    workdir = tempfile.mkdtemp(prefix="recbole_", dir=c.DATA_DIR.parent)
    os.chdir(workdir)  # RecBole writes ./log and ./saved relative to the working directory
    start = time.perf_counter()
    config, dataset, train_data, model, trainer = build(workdir)
    setup = time.perf_counter() - start
    epoch_times, cpu_times, losses = [], [], []
    for epoch in range(1 + TIMED_EPOCHS):
        wall, cpu = c.timed_call(lambda: losses.append(trainer._train_epoch(train_data, epoch, show_progress=False)))
        epoch_times.append(wall)
        cpu_times.append(cpu)
    timed, timed_cpu = epoch_times[1:], cpu_times[1:]
    c.emit(
        "recbole", recbole.__version__, "lightgcn",
        seconds_per_epoch=round(sum(timed) / len(timed), 3),
        cpu_seconds_per_epoch=round(sum(timed_cpu) / len(timed_cpu), 3),
        epoch_seconds=[round(t, 3) for t in epoch_times],
        setup_seconds=round(setup, 2),
        timing=f"Trainer._train_epoch, mean over {TIMED_EPOCHS} epoch(s) after 1 warm-up epoch",
        n_train=len(train_data._dataset), batch_size=config["train_batch_size"],
        batches_per_epoch=-(-len(train_data._dataset) // config["train_batch_size"]),
        losses=[float(x) for x in losses],
    )


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    {"lightgcn": lightgcn}[c.parse_task(["lightgcn"])]()
