"""A synthetic serving bundle with a large catalogue, to load-test the ANN path of `prismrec serve`.

    python bench/make_large_bundle.py --items 1000000 --users 10000 --out /tmp/large-bundle
    prismrec index /tmp/large-bundle --threads 2      # the HNSW graph, once, into the bundle (minutes)
    prismrec serve /tmp/large-bundle --port 8000      # reads it (without it: builds it at start, > 200k items)
    wrk -t1 -c50 -d20s --latency -s bench/serving_wrk.lua http://127.0.0.1:8000 -- /tmp/large-bundle/users.txt

The model is a BPR whose factors are drawn around random "taste" centres instead of being
trained: serving cost depends only on the shapes, and a 1M-item training run is not what
this measures. Each user gets 20 random seen items (excluded from the results).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prismrec.data.interactions import IdMap, Interactions
from prismrec.models import BPR
from prismrec.serving.bundle import write_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(1000, args.factors, generator=generator)

    def around_centres(n):
        return centres[torch.randint(1000, (n,), generator=generator)] + 0.5 * torch.randn(n, args.factors,
                                                                                              generator=generator)

    model = BPR(factors=args.factors)
    model.user_factors_, model.item_factors_ = around_centres(args.users), around_centres(args.items)
    model.item_bias_ = 0.1 * torch.randn(args.items, generator=generator)
    model.n_users_, model.n_items_ = args.users, args.items
    rng = np.random.default_rng(0)
    users = IdMap([f"u{u}" for u in range(args.users)])
    items = IdMap([f"i{i}" for i in range(args.items)])
    seen = Interactions(users, items, np.repeat(np.arange(args.users), 20),
                        rng.integers(0, args.items, size=20 * args.users), source="synthetic")
    write_bundle(args.out, model=model, train=seen, info={"model_name": "synthetic-bpr"})
    pd.Series(users.raw_ids).to_csv(args.out / "users.txt", index=False, header=False)
    print(f"wrote {args.out}: {args.users} users x {args.items} items")


if __name__ == "__main__":
    main()
