"""The serving index on a synthetic catalogue: HNSW build time, query latency, recall@10 vs exact.

    OMP_NUM_THREADS=1 python bench/serving_ann.py --items 1000000 --dim 64

Item vectors are drawn around 1,000 random "taste" centres (a matrix-factorisation
catalogue has such structure; pure Gaussian noise has none and is the worst case for any
ANN index); queries are user-like vectors drawn the same way. A trailing bias column is
included, as in served BPR/VBPR models.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from prismrec.serving.index import ExactIndex, HnswIndex, recall_at_k


def synthetic(n: int, dim: int, centres: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    picks = torch.randint(len(centres), (n,), generator=generator)
    vectors = centres[picks] + 0.5 * torch.randn(n, dim, generator=generator)
    return torch.cat([vectors, 0.1 * torch.randn(n, 1, generator=generator)], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--neighbours", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", default="128,256,512", help="comma-separated; each is measured")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(1000, args.dim, generator=generator)
    items = synthetic(args.items, args.dim, centres, generator)
    queries = synthetic(args.queries, args.dim, centres, generator)
    queries[:, -1] = 1.0  # the user's constant column that multiplies the item bias
    started = time.perf_counter()
    index = HnswIndex(items, neighbours=args.neighbours, ef_construction=args.ef_construction)
    build = time.perf_counter() - started
    started = time.perf_counter()
    exact = ExactIndex(items).search(queries, 10)[0]
    exact_seconds = (time.perf_counter() - started) / len(queries)
    report = {"items": args.items, "dim": args.dim + 1, "neighbours": args.neighbours,
              "ef_construction": args.ef_construction, "hnsw_build_s": round(build, 1),
              "exact_ms_per_query_batched": round(exact_seconds * 1000, 3), "by_ef_search": {}}
    for ef_search in (int(value) for value in args.ef_search.split(",")):
        index.ef_search = ef_search
        latencies = []
        found = np.empty((len(queries), 10), dtype=np.int64)
        for row in range(len(queries)):
            started = time.perf_counter()
            found[row] = index.search(queries[row:row + 1], 10)[0][0]
            latencies.append(time.perf_counter() - started)
        latencies = np.array(latencies) * 1000
        report["by_ef_search"][ef_search] = {
            "query_p50_ms": round(float(np.percentile(latencies, 50)), 3),
            "query_p99_ms": round(float(np.percentile(latencies, 99)), 3),
            "recall_at_10": round(recall_at_k(found, exact), 4)}
    print(json.dumps(report, indent=2))

if __name__ == "__main__":
    main()
