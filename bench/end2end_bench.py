"""Seconds per epoch of VBPR with a frozen text feature against VBPR training MiniLM's top end to end.

A synthetic catalogue (``--items`` items with 20-word texts, ``--users`` users, about
``--per-user`` interactions each) is encoded once by all-MiniLM-L6-v2's frozen lower layers
(cached in a temporary feature store; the one-off time is reported apart). Then VBPR fits
``--epochs`` epochs without validation: once on the frozen MiniLM vectors, and once per
adaptation with the top ``--trainable-layers`` layer(s) trained by the BPR loss.

Example:
    OMP_NUM_THREADS=1 .venv/bin/python bench/end2end_bench.py --items 200 --users 100 --epochs 3
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prismrec.encoders  # noqa: E402,F401
from prismrec.adapt import AdaptationConfig, End2EndItemEncoder  # noqa: E402
from prismrec.data import IdMap, Interactions  # noqa: E402
from prismrec.data.catalog import ItemCatalog  # noqa: E402
from prismrec.encoders.registry import create_encoder  # noqa: E402
from prismrec.encoders.store import encode_catalog  # noqa: E402
from prismrec.models import VBPR  # noqa: E402

WORDS = ("film story war love ship city night hero river storm song dog family crime space robot king queen "
         "comedy drama murder school island ghost music dance train road desert snow").split()


def synthetic(n_items: int, n_users: int, per_user: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    records = [{"item": f"i{i}", "description": " ".join(rng.choice(WORDS, size=20))} for i in range(n_items)]
    catalog = ItemCatalog.from_records(records, text_fields=["description"])
    rows = [(f"u{u}", f"i{i}") for u in range(n_users) for i in rng.choice(n_items, size=per_user, replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    train = Interactions.from_frame(frame, users=IdMap([f"u{u}" for u in range(n_users)]),
                                    items=IdMap([f"i{i}" for i in range(n_items)]), source="synthetic")
    return catalog, train


def seconds_per_epoch(model, train, features, epochs: int) -> float:
    started = time.perf_counter()
    model.fit(train, item_features={"text": features})
    return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--trainable-layers", type=int, default=1)
    parser.add_argument("--adaptations", default="lora,adapter,prompt,full")
    args = parser.parse_args()
    torch.set_num_threads(1)
    catalog, train = synthetic(args.items, args.users, args.per_user)
    text = create_encoder("text:minilm", template="{description}", max_seq_length=args.max_seq_length)
    params = dict(feature_names=("text",), factors=32, visual_factors=32, epochs=args.epochs, batch_size=256)
    with tempfile.TemporaryDirectory() as store:
        frozen = encode_catalog(text, catalog, store, progress=False).features
        print(f"{args.items} items, {len(train)} interactions, max_seq_length {args.max_seq_length}, "
              f"top {args.trainable_layers} layer(s) trained, 1 thread")
        print(f"frozen VBPR: {seconds_per_epoch(VBPR(**params), train, frozen, args.epochs):.3f} s/epoch")
        for adaptation in args.adaptations.split(","):
            config = AdaptationConfig(adaptation, trainable_layers=args.trainable_layers,
                                      max_seq_length=args.max_seq_length)
            started = time.perf_counter()
            encoder = End2EndItemEncoder.from_encoder(text, catalog, store, config)
            cached = time.perf_counter() - started
            model = VBPR(**params).set_item_feature_modules({"text": encoder})
            per_epoch = seconds_per_epoch(model, train, encoder.encode_all().numpy(), args.epochs)
            print(f"end2end VBPR, {adaptation}: {per_epoch:.3f} s/epoch (lower-layer cache: {cached:.1f} s, "
                  f"{sum(p.numel() for p in encoder.trainable_parameters())} trainable tensors' elements)")


if __name__ == "__main__":
    main()
