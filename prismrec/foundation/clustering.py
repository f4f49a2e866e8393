"""Seeded k-means and spectral partitioning for item indexing, on scipy only.

scikit-learn is not a PrismRec dependency; ``scipy.cluster.vq.kmeans2`` (k-means++ start)
and ``scipy.sparse.linalg.eigsh`` do the numerical work here.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.cluster.vq import kmeans2
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackError, eigsh


def kmeans(points: np.ndarray, n_clusters: int, rng: np.random.Generator, *, iterations: int = 20):
    """``(centroids [k, d], labels [n])`` of k-means with a k-means++ start.

    Empty clusters keep their centroid (scipy's default is to warn); labels always index
    into ``centroids``.

    Example:
        >>> points = np.array([[0.0], [0.1], [5.0], [5.1]])
        >>> _, labels = kmeans(points, 2, np.random.default_rng(0))
        >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
        True
    """
    points = np.asarray(points, dtype=np.float64)
    n_clusters = max(1, min(n_clusters, len(points)))
    if n_clusters == 1:
        return points.mean(0, keepdims=True), np.zeros(len(points), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "one of the clusters is empty": harmless for indexing
        centroids, labels = kmeans2(points, n_clusters, iter=iterations, minit="++",
                                    seed=int(rng.integers(2**31)))
    return centroids, labels.astype(np.int64)


def spectral_embedding(graph: sp.spmatrix, dim: int) -> np.ndarray:
    """Rows of the top ``dim`` eigenvectors of ``D^-1/2 A D^-1/2``, each row unit length.

    Isolated nodes (degree 0) get a zero row; they end up together in one cluster.
    """
    graph = sp.csr_matrix(graph, dtype=np.float64)
    degree = np.asarray(graph.sum(1)).ravel()
    inverse_root = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    normalised = sp.diags(inverse_root) @ graph @ sp.diags(inverse_root)
    n = graph.shape[0]
    dim = min(dim, n - 1)
    if n <= 256 or dim >= n - 1:
        values, vectors = np.linalg.eigh(normalised.toarray())
        vectors = vectors[:, np.argsort(values)[::-1][:dim]]
    else:
        start = np.random.default_rng(0).random(n)
        _, vectors = eigsh(normalised, k=dim, which="LA", v0=start)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def spectral_partition(graph: sp.spmatrix, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster labels ``0..k-1`` (consecutive) of the nodes of ``graph`` by spectral clustering.

    Isolated nodes get a cluster of their own. A graph of several connected components is
    split along them (components packed, largest first, into the least-filled of at most
    ``n_clusters`` clusters): its top eigenvalue is degenerate, so eigenvectors, and
    clusters built on them, would be any basis of that space, changed by the smallest
    rounding difference. When clustering cannot separate the nodes (all in one cluster),
    the nodes are cut into ``n_clusters`` equal chunks instead, so that recursion always
    makes progress.
    """
    graph = sp.csr_matrix(graph, dtype=np.float64)
    n = graph.shape[0]
    if n_clusters < 2 or n < 2:
        return np.zeros(n, dtype=np.int64)
    isolated = np.asarray(graph.sum(1)).ravel() == 0
    if isolated.any() and not isolated.all():
        # items without co-occurrences (none in training) form one cluster of their own
        labels = np.full(n, n_clusters - 1, dtype=np.int64)
        connected = np.flatnonzero(~isolated)
        labels[connected] = spectral_partition(graph[connected][:, connected], n_clusters - 1, rng)
        _, labels = np.unique(labels, return_inverse=True)
        return labels.ravel().astype(np.int64)
    n_components, component = connected_components(graph, directed=False)
    if n_components > 1 and not isolated.all():
        return pack_components(component, n_clusters)
    labels = np.zeros(n, dtype=np.int64)
    if not isolated.all():
        try:
            _, labels = kmeans(spectral_embedding(graph, n_clusters), n_clusters, rng)
        except ArpackError:  # no convergence: fall through to equal chunks
            labels = np.zeros(n, dtype=np.int64)
    if len(np.unique(labels)) < 2:
        labels = (np.arange(n) * n_clusters) // n
    _, labels = np.unique(labels, return_inverse=True)
    return labels.ravel().astype(np.int64)


def pack_components(component: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cluster labels that keep each component whole: largest component first (ties: the one
    whose first node comes first) into the cluster with the fewest nodes so far (ties: the
    lowest label). Deterministic; labels are consecutive from 0.

    Example:
        >>> pack_components(np.array([0, 0, 0, 1, 2, 2]), 2).tolist()
        [0, 0, 0, 1, 1, 1]
    """
    sizes = np.bincount(component)
    first = np.full(len(sizes), len(component), dtype=np.int64)
    np.minimum.at(first, component, np.arange(len(component)))
    order = np.lexsort((first, -sizes))
    k = min(n_clusters, len(sizes))
    filled, cluster_of = np.zeros(k, dtype=np.int64), np.empty(len(sizes), dtype=np.int64)
    for c in order:
        target = int(np.argmin(filled))
        cluster_of[c] = target
        filled[target] += sizes[c]
    _, labels = np.unique(cluster_of[component], return_inverse=True)
    return labels.ravel().astype(np.int64)
