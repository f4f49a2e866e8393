"""Build the synthetic implicit-feedback data set every benchmarked library trains on.

20,000 users x 10,000 items x 500,000 unique (user, item) pairs with Zipf-like item
popularity and log-normal user activity, a fixed seed, and timestamps. It is split
per user 80/20 (train/test) with ``prismrec.data.splits.per_user_ratio`` and written as:

    bench/.data/synthetic/
        interactions.csv, interactions.parquet   all pairs (user, item, timestamp)
        train.csv, test.csv                      the split every library uses
        item_features.npy                        float32 [10000, 512], row j = item "i{j}"
        item_text_features.npy                   float32 [10000, 384] (the second modality of
                                                 the multimodal speed benchmark)
        recbole/synth/synth.{train,valid,test}.inter   RecBole atomic files (valid = test,
                                                       never used for timing)
        meta.json                                description + checksums of the split

Run with the project's venv (it uses prismrec's splitter):

    .venv/bin/python bench/make_synthetic.py            # idempotent: skips when present
    .venv/bin/python bench/make_synthetic.py --force

Example (from Python):
    >>> from bench.make_synthetic import generate_pairs  # doctest: +SKIP
    >>> users, items = generate_pairs(n_users=100, n_items=50, n_interactions=1000, seed=0)  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / ".data" / "synthetic"
SEED = 20240611
N_USERS, N_ITEMS, N_INTERACTIONS = 20_000, 10_000, 500_000
ZIPF_EXPONENT = 0.8
MIN_PER_USER = 5
FEATURE_DIM = 512
TEXT_FEATURE_DIM = 384


def _user_quota(n_users: int, n_interactions: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: MIN_PER_USER each plus a log-normal share of the rest."""
    weights = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    extra = rng.multinomial(n_interactions - MIN_PER_USER * n_users, weights / weights.sum())
    quota = MIN_PER_USER + extra
    cap = n_items // 4
    overflow = int(np.maximum(quota - cap, 0).sum())
    quota = np.minimum(quota, cap)
    while overflow:  # hand capped users' surplus to others, one at a time, deterministically
        room = np.flatnonzero(quota < cap)
        take = rng.choice(room, size=min(overflow, len(room)), replace=False)
        quota[take] += 1
        overflow -= len(take)
    return quota


def generate_pairs(*, n_users: int, n_items: int, n_interactions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique (user, item) index pairs: per-user quotas, items drawn by Zipf popularity."""
    rng = np.random.default_rng(seed)
    quota = _user_quota(n_users, n_interactions, n_items, rng)
    popularity = 1.0 / np.arange(1, n_items + 1) ** ZIPF_EXPONENT
    popularity = popularity[rng.permutation(n_items)]  # popular items are not the low ids
    cdf = np.cumsum(popularity / popularity.sum())
    have = np.zeros(n_users, dtype=np.int64)
    keys = np.empty(0, dtype=np.int64)
    for _ in range(200):
        missing = quota - have
        if not missing.any():
            break
        draw_users = np.repeat(np.arange(n_users), missing * 2)
        draw_items = np.minimum(np.searchsorted(cdf, rng.random(len(draw_users))), n_items - 1)
        new = draw_users * n_items + draw_items
        new = new[~np.isin(new, keys)]
        new = new[np.sort(np.unique(new, return_index=True)[1])]  # first occurrence, draw order
        rank = _rank_within_user(new // n_items)
        new = new[rank < missing[new // n_items]]
        keys = np.concatenate([keys, new])
        have = np.bincount(keys // n_items, minlength=n_users)
    else:
        raise RuntimeError("could not fill every user's quota; lower ZIPF_EXPONENT")
    return keys // n_items, keys % n_items


def _rank_within_user(users: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for each row among the earlier rows of the same user (order kept)."""
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - run_start
    return rank


def item_features(n_items: int, seed: int) -> np.ndarray:
    """Float32 [n_items, 512]: ReLU of a low-rank projection plus noise (CNN-feature-like)."""
    rng = np.random.default_rng(seed + 1)
    latent = rng.standard_normal((n_items, 32)).astype(np.float32)
    projection = rng.standard_normal((32, FEATURE_DIM)).astype(np.float32) / np.sqrt(32)
    noise = 0.3 * rng.standard_normal((n_items, FEATURE_DIM)).astype(np.float32)
    return np.maximum(latent @ projection + noise, 0.0).astype(np.float32)


def item_text_features(n_items: int, seed: int) -> np.ndarray:
    """Float32 [n_items, 384]: unit-norm rows of a low-rank projection plus noise
    (sentence-embedding-like, as MiniLM's), from its own seed."""
    rng = np.random.default_rng(seed + 3)
    latent = rng.standard_normal((n_items, 32)).astype(np.float32)
    projection = rng.standard_normal((32, TEXT_FEATURE_DIM)).astype(np.float32) / np.sqrt(32)
    rows = latent @ projection + 0.5 * rng.standard_normal((n_items, TEXT_FEATURE_DIM)).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def build_frame(seed: int = SEED) -> pd.DataFrame:
    users, items = generate_pairs(n_users=N_USERS, n_items=N_ITEMS, n_interactions=N_INTERACTIONS, seed=seed)
    rng = np.random.default_rng(seed + 2)
    start = 1_672_531_200  # 2023-01-01 UTC, one year of timestamps
    timestamps = rng.integers(start, start + 365 * 86_400, size=len(users))
    return pd.DataFrame({"user": [f"u{u}" for u in users], "item": [f"i{i}" for i in items], "timestamp": timestamps})


def split_frame(frame: pd.DataFrame, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user random 80/20 train/test with prismrec's splitter (valid share 0).

    Test rows whose item never occurs in train are moved to train, so that every
    library (some drop unknown test items, some keep them) sees the same test set.
    """
    sys.path.insert(0, str(ROOT))
    from prismrec.data.interactions import IdMap, Interactions
    from prismrec.data.splits import per_user_ratio

    data = Interactions.from_frame(
        frame, time_col="timestamp", source="synthetic",
        users=IdMap([f"u{u}" for u in range(N_USERS)]), items=IdMap([f"i{i}" for i in range(N_ITEMS)]),
    )
    split = per_user_ratio(data, (0.8, 0.0, 0.2), seed=seed)
    assert len(split.valid) == 0
    split.check_disjoint()
    train, test = split.train.to_frame(), split.test.to_frame()
    cold = ~test["item"].isin(set(train["item"]))
    train = pd.concat([train, test[cold]], ignore_index=True)
    test = test[~cold].reset_index(drop=True)
    for part in (train, test):
        part["timestamp"] = part["timestamp"].astype(np.int64)
    return train, test


def write_recbole(train: pd.DataFrame, test: pd.DataFrame, folder: Path) -> None:
    """RecBole atomic files with typed headers; valid repeats test (RecBole needs 3 parts)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    for name, part in (("train", train), ("valid", test), ("test", test)):
        with open(folder / f"synth.{name}.inter", "w") as handle:
            handle.write(header)
            part.to_csv(handle, sep="\t", header=False, index=False)


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    args = parser.parse_args(argv)
    out: Path = args.out
    if (out / "meta.json").is_file() and not args.force:
        if not (out / "item_text_features.npy").is_file():  # added after the first data sets were built
            np.save(out / "item_text_features.npy", item_text_features(N_ITEMS, SEED))
        print(f"{out}: already built (use --force to rebuild)")
        return out
    out.mkdir(parents=True, exist_ok=True)
    frame = build_frame()
    frame.to_csv(out / "interactions.csv", index=False)
    frame.to_parquet(out / "interactions.parquet", index=False)
    train, test = split_frame(frame)
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    write_recbole(train, test, out / "recbole" / "synth")
    np.save(out / "item_features.npy", item_features(N_ITEMS, SEED))
    np.save(out / "item_text_features.npy", item_text_features(N_ITEMS, SEED))
    popularity = frame["item"].value_counts().to_numpy()
    meta = {
        "seed": SEED, "n_users": N_USERS, "n_items": N_ITEMS, "n_interactions": len(frame),
        "zipf_exponent": ZIPF_EXPONENT, "min_per_user": MIN_PER_USER,
        "n_train": len(train), "n_test": len(test), "n_test_users": int(test["user"].nunique()),
        "n_train_items": int(train["item"].nunique()),
        "top1_item_share": float(popularity[0] / len(frame)),
        "top1pct_items_share": float(popularity[: N_ITEMS // 100].sum() / len(frame)),
        "feature_dim": FEATURE_DIM, "train_sha": _digest(train), "test_sha": _digest(test),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))
    return out


if __name__ == "__main__":
    main()
