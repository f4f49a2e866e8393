"""Top-k item search by inner product: exact batched torch by default, faiss HNSW for large catalogues.

:func:`make_index` picks :class:`ExactIndex` below ``ann_threshold`` items and
:class:`HnswIndex` (faiss ``IndexHNSWFlat``, inner-product metric) from there on. Both
take new items incrementally with :meth:`add`, and both return ``(indices, scores)``
with ``-1`` / ``-inf`` padding when fewer than ``k`` items qualify. Items in ``exclude``
(a user's seen items) never come back: the exact index masks them; the ANN index asks
for ``k + len(exclude)`` candidates and filters them.

Example:
    >>> import torch
    >>> index = make_index(torch.eye(3))
    >>> index.search(torch.tensor([[0.0, 2.0, 1.0]]), k=2)[0].tolist()
    [[1, 2]]
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from prismrec.io import atomic_path

DEFAULT_ANN_THRESHOLD = 200_000
DEFAULT_EF_SEARCH = 64  # HNSW candidates per query; on the 1M bundle recall@10 0.984 at 64 (0.989 at 128) in 0.16 ms (0.25)


class ExactIndex:
    """Exact maximum inner product search: one matrix product and ``torch.topk`` per batch.

    A single query (the HTTP path) goes through NumPy instead: one product, ``argpartition`` and a
    sort of the ``k`` winners. Profiling the server showed torch's per-call overheads (autograd
    mode, tensor wrapping, ``isfinite``/``where``) made one 1 x 1,682 search cost 0.15 ms against
    0.03 ms this way; the answers are the same.
    """

    kind = "exact"

    def __init__(self, item_vectors: torch.Tensor, *, batch_size: int = 1024) -> None:
        self.item_vectors = item_vectors.float().contiguous()
        self._matrix = self.item_vectors.numpy()  # shares the tensor's memory
        self.batch_size = batch_size

    def __len__(self) -> int:
        return self.item_vectors.shape[0]

    def add(self, item_vectors: torch.Tensor) -> None:
        self.item_vectors = torch.cat([self.item_vectors, item_vectors.float()]).contiguous()
        self._matrix = self.item_vectors.numpy()

    def search(self, queries: torch.Tensor, k: int, exclude: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each query row; ``exclude[row]`` is an iterable of item indices to skip."""
        if len(queries) == 1:
            query = np.asarray(queries, dtype=np.float32).reshape(-1)
            return self._search_one(query, k, exclude[0] if exclude is not None else None)
        return self._search_batches(queries, k, exclude)

    def _search_one(self, query: np.ndarray, k: int, exclude) -> tuple[np.ndarray, np.ndarray]:
        scores = self._matrix @ query
        if exclude:
            scores[np.fromiter(exclude, np.int64, len(exclude))] = -np.inf
        n, take = len(scores), min(k, len(scores))
        top = np.argpartition(scores, n - take)[n - take:] if take < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        indices = np.full((1, k), -1, dtype=np.int64)
        out = np.full((1, k), -np.inf, dtype=np.float32)
        found = np.isfinite(scores[top])
        indices[0, :take] = np.where(found, top, -1)
        out[0, :take] = scores[top]
        return indices, out

    @torch.no_grad()
    def _search_batches(self, queries, k: int, exclude: list | None) -> tuple[np.ndarray, np.ndarray]:
        queries = torch.as_tensor(queries).float().reshape(-1, self.item_vectors.shape[1])
        take = min(k, len(self))
        indices = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start:start + self.batch_size]
            block = batch @ self.item_vectors.T
            if exclude is not None:
                for row, items in enumerate(exclude[start:start + len(batch)]):
                    if items:
                        block[row, torch.as_tensor(list(items), dtype=torch.int64)] = -torch.inf
            top = torch.topk(block, take, dim=1)
            found = torch.isfinite(top.values)
            indices[start:start + len(batch), :take] = torch.where(found, top.indices, -1).numpy()
            scores[start:start + len(batch), :take] = top.values.numpy()
        return indices, scores


class HnswIndex:
    """Approximate search with faiss HNSW on inner product; new items are inserted into the graph.

    ``ef_search`` trades speed for recall (the tests check recall@10 >= 0.95 against exact).
    """

    kind = "hnsw"

    def __init__(self, item_vectors: torch.Tensor, *, neighbours: int = 32, ef_construction: int = 80,
                 ef_search: int = DEFAULT_EF_SEARCH, cache_dir: str | Path | None = None,
                 prebuilt_dir: str | Path | None = None) -> None:
        import faiss

        self._faiss = faiss
        self.ef_search = ef_search
        self.path = None
        name = None
        if cache_dir is not None or prebuilt_dir is not None:  # a 1M-item graph takes minutes to build
            name = graph_file_name(item_vectors, neighbours, ef_construction)
            for folder in (prebuilt_dir, cache_dir):  # a graph shipped in the bundle, else one built before
                if folder is not None and (Path(folder) / name).is_file():
                    self.path = Path(folder) / name
                    self.index = faiss.read_index(str(self.path))
                    return
        self.index = faiss.IndexHNSWFlat(item_vectors.shape[1], neighbours, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.add(item_vectors)
        if cache_dir is not None:
            self.path = Path(cache_dir) / name
            with atomic_path(self.path) as tmp:
                faiss.write_index(self.index, str(tmp))

    def __len__(self) -> int:
        return self.index.ntotal

    def add(self, item_vectors: torch.Tensor) -> None:
        self.index.add(np.ascontiguousarray(item_vectors.float().numpy()))

    def search(self, queries: torch.Tensor, k: int, exclude: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(torch.as_tensor(queries).float().reshape(len(queries), -1).numpy())
        extra = max((len(items) for items in exclude), default=0) if exclude is not None else 0
        wanted = min(k + extra, len(self))
        params = self._faiss.SearchParametersHNSW(efSearch=max(self.ef_search, wanted))
        scores, indices = self.index.search(queries, wanted, params=params)
        out_indices = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for row in range(len(queries)):
            skip = exclude[row] if exclude is not None else ()
            keep = [pos for pos, item in enumerate(indices[row]) if item >= 0 and item not in skip][:k]
            out_indices[row, :len(keep)] = indices[row, keep]
            out_scores[row, :len(keep)] = scores[row, keep]
        return out_indices, out_scores


def graph_file_name(item_vectors: torch.Tensor, neighbours: int, ef_construction: int) -> str:
    """``hnsw-<hash>.faiss``: the hash covers the vectors and the build options, so a graph is never
    reused for other vectors."""
    digest = hashlib.sha256(np.ascontiguousarray(item_vectors.float().numpy()).tobytes())
    digest.update(f"{neighbours},{ef_construction}".encode())
    return f"hnsw-{digest.hexdigest()[:24]}.faiss"


def make_index(item_vectors: torch.Tensor, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD, **options):
    """:class:`ExactIndex` for catalogues below ``ann_threshold`` items, else :class:`HnswIndex`
    (``options`` go to it, e.g. ``cache_dir`` to reuse the graph built for the same vectors)."""
    if item_vectors.shape[0] >= ann_threshold:
        return HnswIndex(item_vectors, **options)
    return ExactIndex(item_vectors)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k found by the approximate top-k (rows are queries)."""
    hits = [len(set(a[a >= 0]) & set(e[e >= 0])) / max((e >= 0).sum(), 1) for a, e in zip(approximate, exact)]
    return float(np.mean(hits))
