"""Shared content-graph code: kNN graphs against brute force, zero rows, memory bound,
normalisations, degree-sensitive edge sampling, the graph cache and feature checks."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from prismrec.models import content
from prismrec.models.content import checked_features, graph_cache_key, item_content_graph, modality_weights
from prismrec.models.graph import row_normalize
from prismrec.models.item_graph import block_rows_for, degree_sensitive_edge_sample, knn_graph
from prismrec.models.module_training import FixedGraph


def brute_force_knn(features: np.ndarray, k: int, shrink: float = 0.0, include_self: bool = True) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1)
    similarity = features @ features.T / (np.outer(norms, norms) + shrink)
    if not include_self:
        np.fill_diagonal(similarity, -np.inf)
    dense = np.zeros_like(similarity)
    for row in range(len(features)):
        top = np.argsort(-similarity[row])[:k]
        dense[row, top] = similarity[row, top]
    return dense


@pytest.mark.parametrize("shrink, include_self, backend", [
    (0.0, True, "numpy"), (2.0, True, "numpy"), (0.0, False, "numpy"), (0.0, True, "faiss"), (0.0, False, "faiss"),
])
def test_knn_graph_equals_a_dense_brute_force_computation(shrink, include_self, backend):
    features = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    for block_bytes in (12 * 50 * 7, 2**20):  # blocks of 7 rows, and one block
        graph = knn_graph(features, 4, shrink=shrink, include_self=include_self, block_bytes=block_bytes,
                          backend=backend)
        assert graph.shape == (50, 50) and graph.dtype == np.float32
        assert (np.diff(graph.indptr) == 4).all()
        np.testing.assert_allclose(graph.toarray(), brute_force_knn(features, 4, shrink, include_self),
                                   rtol=1e-5, atol=1e-6)
    binary = knn_graph(features, 4, binary=True)
    np.testing.assert_array_equal(binary.toarray(), (brute_force_knn(features, 4) != 0).astype(np.float32))


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_items_without_content_get_no_edges_and_are_nobodys_neighbour(backend):
    """MMRec divides by a zero norm: the NaN similarities then rank first in topk. Ours must not."""
    features = np.array([[1.0, 0.0], [0.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    graph = knn_graph(features, 3, backend=backend)
    dense = graph.toarray()
    assert np.isfinite(dense).all()
    assert not dense[[1, 4]].any() and not dense[:, [1, 4]].any()
    np.testing.assert_allclose(dense[0], [1.0, 0.0, 0.8, 0.0, 0.0], rtol=1e-6)  # k=3 but only 3 with content
    assert knn_graph(np.zeros((3, 2)), 2, backend=backend).nnz == 0
    with pytest.raises(ValueError, match="knn backend must be one of"):
        knn_graph(features, 3, backend="annoy")


def test_block_builder_never_allocates_n_by_n():
    n_items, budget = 20_000, 8 * 2**20
    features = np.random.default_rng(1).normal(size=(n_items, 4)).astype(np.float32)
    assert block_rows_for(n_items, budget) == 34
    tracemalloc.start()
    graph = knn_graph(features, 5, block_bytes=budget, backend="numpy")  # faiss blocks internally
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert graph.nnz == n_items * 5
    assert peak < 3 * budget  # the dense similarity matrix alone would be 1.6 GB
    assert (graph.diagonal() > 0.999).all()  # every item is its own nearest neighbour


def test_row_normalization_and_symmetric_normalization_of_an_item_graph():
    graph = sp.csr_matrix(np.array([[2.0, 2.0, 0.0], [0.0, 1.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(row_normalize(graph).toarray(), [[0.5, 0.5, 0], [0, 0.25, 0.75], [0, 0, 0]])
    symmetric = content.normalize_graph(graph, "symmetric").toarray()  # row degrees 4, 4, 0
    np.testing.assert_allclose(symmetric, [[0.5, 0.5, 0], [0, 0.25, 0], [0, 0, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="normalization must be one of"):
        content.normalize_graph(graph, "laplacian")


def test_degree_sensitive_sampling_drops_edges_of_popular_nodes_more_often():
    # user 0 has 8 items (items 0..7, each also liked by users 1..3); user 4 alone likes item 8
    rows = [0] * 8 + [1, 2, 3] * 8 + [4]
    columns = list(range(8)) + [item for item in range(8) for _ in range(3)] + [8]
    interactions = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(5, 9))
    kept_lonely, kept_star = 0, 0
    for seed in range(200):
        kept = degree_sensitive_edge_sample(interactions, 0.5, np.random.default_rng(seed))
        assert kept.nnz == round(interactions.nnz * 0.5)
        assert (kept - kept.multiply(interactions)).nnz == 0  # only existing edges
        kept_lonely += kept[4, 8]
        kept_star += kept[0].sum() / 8
    # weights 1/sqrt(1*1) against 1/sqrt(8*4) for the 32 others: uniform dropout would keep
    # every edge half of the time; the lonely edge survives almost always, the others less
    assert kept_lonely / 200 > 0.9 and 0.4 < kept_star / 200 < 0.5
    assert degree_sensitive_edge_sample(interactions, 1.0, np.random.default_rng(0)).nnz == interactions.nnz


def test_graph_cache_is_keyed_by_features_and_parameters(tmp_path, monkeypatch):
    features = np.random.default_rng(2).normal(size=(12, 3)).astype(np.float32)
    first = item_content_graph(features, k=3, binary=True, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("item-graph-*.npz"))) == 1
    monkeypatch.setattr(content, "knn_graph", lambda *a, **k: pytest.fail("the cached graph was rebuilt"))
    again = item_content_graph(features, k=3, binary=True, cache_dir=tmp_path)
    assert (again != first).nnz == 0
    monkeypatch.undo()
    changed = features.copy()
    changed[0] *= -1  # same shape, same parameters, different content: a new graph
    assert graph_cache_key(changed, {"k": 3}) != graph_cache_key(features, {"k": 3})
    item_content_graph(changed, k=3, binary=True, cache_dir=tmp_path)
    item_content_graph(features, k=4, binary=True, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("item-graph-*.npz"))) == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_feature_checks_name_the_feature_and_count_bad_rows():
    good = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"FREEDOM: item feature 'image' must be \[n_items=4, d\], got shape \(3, 2\)"):
        checked_features({"image": good[:3]}, ["image"], 4, "FREEDOM")
    bad = good.copy()
    bad[[1, 3], 0] = np.nan
    with pytest.raises(ValueError, match=r"'text' has NaN or infinite values in 2 of 4 rows \(first: row 1\)"):
        checked_features({"image": good, "text": bad}, ["image", "text"], 4, "FREEDOM")
    with pytest.raises(ValueError, match=r"needs the item feature array 'audio'"):
        checked_features({"image": good}, ["audio"], 4, "FREEDOM")


def test_modality_weights():
    assert modality_weights(["image", "text"], {"image": 0.1, "text": 0.9}).tolist() == pytest.approx([0.1, 0.9])
    assert modality_weights(["image", "text", "audio"], None).tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="non-negative"):
        modality_weights(["image"], {"image": -1.0})


def test_fixed_graph_product_and_gradient_match_dense_autograd():
    matrix = sp.random(9, 9, density=0.3, format="csr", dtype=np.float32, random_state=4)
    graph = FixedGraph(matrix)
    embeddings = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    ours, reference = embeddings.clone().requires_grad_(True), embeddings.clone().requires_grad_(True)
    weights = torch.randn(9, 3, generator=torch.Generator().manual_seed(1))
    (graph.propagate(ours, 2) * weights).sum().backward()
    dense = torch.from_numpy(matrix.toarray())
    (dense @ (dense @ reference) * weights).sum().backward()
    torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-5, atol=1e-6)
