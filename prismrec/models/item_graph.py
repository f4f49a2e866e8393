"""Item-item content graphs shared by the multimodal graph models (FREEDOM, LATTICE, ItemKNN-CBF...).

The k-nearest-neighbour graph of a feature array is built in row blocks, so memory is
``O(n_items * k + block_rows * n_items)`` and never ``n_items²`` (LATTICE's dense
similarity matrix needs about 40 GB for 100k items). Cosine similarity is safe for
all-zero rows (items without a poster): such an item gets no edges and is nobody's
neighbour, where a plain ``x / ||x||`` gives NaN and ``topk`` ranks the NaNs first.

Example:
    >>> import numpy as np
    >>> graph = knn_graph(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.0, 0.0]]), k=2)
    >>> np.round(graph.toarray().astype(float), 2).tolist()
    [[1.0, 0.99, 0.0, 0.0], [0.99, 1.0, 0.0, 0.0], [0.0, 0.11, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
"""
from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp

#: bytes one block of the similarity computation may take
DEFAULT_BLOCK_BYTES = 64 * 2**20


def block_rows_for(n_items: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per block so that a block's float32 similarities and int64 ranks
    (12 bytes per ``[rows, n_items]`` entry) fit in ``block_bytes``.

    Example:
        >>> block_rows_for(100_000, 64 * 2**20)
        55
    """
    return int(max(1, min(n_items, block_bytes // (12 * max(n_items, 1)))))


KNN_BACKENDS = ("auto", "numpy", "faiss")
#: ``auto`` uses faiss from this many multiply-adds (n_items² · d) on: below it numpy is as fast,
#: and starting faiss's OpenMP pool next to numba's and torch's makes a busy machine spin
FAISS_MIN_FLOPS = 2**31


def knn_graph(features: np.ndarray, k: int, *, shrink: float = 0.0, include_self: bool = True,
              binary: bool = False, block_bytes: int = DEFAULT_BLOCK_BYTES, backend: str = "auto") -> sp.csr_matrix:
    """Directed cosine kNN graph ``[n_items, n_items]`` (CSR, float32): row ``i`` holds its ``k`` most
    similar items, valued by ``x_i·x_j / (|x_i| |x_j| + shrink)`` (or 1 with ``binary=True``).

    All-zero rows get no edges and are never chosen as neighbours. The graph is
    deterministic, though which of several equally similar items fills the last place is
    unspecified. With ``include_self`` an item counts as its own neighbour (it is its most
    similar item), as in MMRec's graphs. ``backend``: ``numpy`` (row blocks of at most
    ``block_bytes``), ``faiss`` (exact inner-product search, which blocks internally; about
    3x faster for 64-d features) or ``auto`` (faiss when installed and ``shrink`` is 0).
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"knn_graph needs a 2-d feature array [n_items, d], got shape {features.shape}")
    if k < 1:
        raise ValueError(f"knn_k must be at least 1, got {k}")
    if backend not in KNN_BACKENDS:
        raise ValueError(f"knn backend must be one of {KNN_BACKENDS}, got {backend!r}")
    n_items = features.shape[0]
    norms = np.linalg.norm(features, axis=1)
    has_content = norms > 0
    unit = features / np.where(has_content, norms, 1.0)[:, None]
    k_eff = min(k, int(has_content.sum()) - (0 if include_self else 1))
    if k_eff <= 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    large = int(has_content.sum()) ** 2 * features.shape[1] >= FAISS_MIN_FLOPS
    if backend == "faiss" or (backend == "auto" and shrink == 0 and large and _faiss() is not None):
        rows, columns, values = _faiss_entries(unit, has_content, k_eff, include_self)
    else:
        rows, columns, values = _numpy_entries(unit, norms, has_content, k_eff, shrink, include_self, block_bytes)
    if binary:
        values = np.ones_like(values)
    graph = sp.csr_matrix((values, (rows, columns)), shape=(n_items, n_items), dtype=np.float32)
    graph.sort_indices()
    return graph


def _numpy_entries(unit, norms, has_content, k, shrink, include_self, block_bytes):
    n_items = len(unit)
    rows, columns, values = [], [], []
    step = block_rows_for(n_items, block_bytes)
    with _blas_threads_for(step * n_items * unit.shape[1]):
        for start in range(0, n_items, step):
            block = np.flatnonzero(has_content[start:start + step]) + start
            if len(block):
                neighbours, similarity = _block_top_k(unit, norms, has_content, block, k, shrink, include_self)
                rows.append(np.repeat(block, k)), columns.append(neighbours.ravel())
                values.append(similarity.ravel())
    return np.concatenate(rows), np.concatenate(columns), np.concatenate(values)


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        return None
    return faiss


def _faiss_entries(unit, has_content, k, include_self):
    """Exact top-k inner products among the rows with content (faiss blocks queries and database)."""
    import torch

    faiss = _faiss()
    if faiss is None:
        raise ImportError("knn backend 'faiss' needs the faiss-cpu package")
    present = np.flatnonzero(has_content)
    vectors = np.ascontiguousarray(unit[present])
    threads = torch.get_num_threads()
    faiss.omp_set_num_threads(1 if len(present) ** 2 * unit.shape[1] < SERIAL_BLOCK_FLOPS else threads)
    try:
        similarity, neighbours = faiss.knn(vectors, vectors, k + (0 if include_self else 1),
                                           metric=faiss.METRIC_INNER_PRODUCT)
    finally:  # faiss and torch may share one OpenMP runtime: give torch back its count
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    if not include_self:  # drop the row's own entry (or, if a tie hid it, the last one)
        own = neighbours == np.arange(len(present))[:, None]
        own[~own.any(1), -1] = True
        neighbours, similarity = (a[~own].reshape(len(present), k) for a in (neighbours, similarity))
    return np.repeat(present, k), present[neighbours.ravel()], similarity.ravel().astype(np.float32)


#: block products with fewer multiply-adds than this run BLAS on one thread
SERIAL_BLOCK_FLOPS = 2**27


def _blas_threads_for(flops: int):
    """One BLAS thread for small block products (a spinning pool makes them ~6x slower on a busy
    machine); a no-op when the product is big."""
    from prismrec.threads import blas_limit

    return blas_limit(1) if flops < SERIAL_BLOCK_FLOPS else contextlib.nullcontext()


def _block_top_k(unit, norms, has_content, block, k, shrink, include_self):
    """Top-``k`` neighbours (indices, similarities) of the rows ``block``.

    Peak memory is one float32 and one int64 ``[len(block), n]`` array (argpartition's output).
    """
    similarity = unit[block] @ unit.T
    if shrink:
        scale = norms[block, None] * norms[None, :]
        similarity *= scale / (scale + np.float32(shrink))
    similarity[:, ~has_content] = -np.inf
    if not include_self:
        similarity[np.arange(len(block)), block] = -np.inf
    np.negative(similarity, out=similarity)  # in place: argpartition picks the smallest
    if k < similarity.shape[1]:
        chosen = np.argpartition(similarity, k - 1, axis=1)[:, :k]
    else:
        chosen = np.broadcast_to(np.arange(similarity.shape[1]), (len(block), k))
    return chosen, -np.take_along_axis(similarity, chosen, axis=1)


def degree_sensitive_edge_sample(interactions: sp.spmatrix, keep_ratio: float,
                                 rng: np.random.Generator) -> sp.csr_matrix:
    """FREEDOM's degree-sensitive edge pruning: keep ``round(nnz * keep_ratio)`` user-item edges,
    drawn without replacement with probability proportional to ``1 / sqrt(d_u d_i)``, so
    edges between high-degree nodes are dropped more often.

    Weighted sampling without replacement uses exponential keys (Efraimidis & Spirakis
    2006): the edges with the largest ``log(u) * sqrt(d_u d_i)`` win; O(nnz).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> kept = degree_sensitive_edge_sample(sp.eye(4, format="csr"), 0.5, np.random.default_rng(0))
        >>> int(kept.nnz)
        2
    """
    matrix = sp.coo_matrix(interactions, dtype=np.float32)
    n_keep = int(round(matrix.nnz * keep_ratio))
    if n_keep >= matrix.nnz:
        return sp.csr_matrix(matrix)
    user_degree = np.bincount(matrix.row, minlength=matrix.shape[0]).astype(np.float64)
    item_degree = np.bincount(matrix.col, minlength=matrix.shape[1]).astype(np.float64)
    weight = 1.0 / np.sqrt(user_degree[matrix.row] * item_degree[matrix.col])
    keys = np.log(rng.random(matrix.nnz)) / weight  # larger is better; log(u) <= 0
    kept = np.argpartition(-keys, n_keep - 1)[:n_keep] if n_keep > 0 else np.empty(0, dtype=np.int64)
    return sp.csr_matrix((np.ones(len(kept), dtype=np.float32), (matrix.row[kept], matrix.col[kept])),
                         shape=matrix.shape)


def uniform_edge_sample(interactions: sp.spmatrix, keep_ratio: float, rng: np.random.Generator) -> sp.csr_matrix:
    """Keep ``round(nnz * keep_ratio)`` user-item edges drawn uniformly without replacement.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> int(uniform_edge_sample(sp.eye(10, format="csr"), 0.3, np.random.default_rng(0)).nnz)
        3
    """
    matrix = sp.coo_matrix(interactions, dtype=np.float32)
    kept = rng.permutation(matrix.nnz)[: int(round(matrix.nnz * keep_ratio))]
    return sp.csr_matrix((np.ones(len(kept), dtype=np.float32), (matrix.row[kept], matrix.col[kept])),
                         shape=matrix.shape)
