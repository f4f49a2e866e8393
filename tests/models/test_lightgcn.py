"""LightGCN-specific checks: the normalised graph and the propagation with its gradient."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from prismrec.models import LightGCN
from prismrec.models.graph import (
    bipartite_adjacency,
    normalized_bipartite_adjacency,
    propagate_layer_mean,
    propagated_rows,
    to_torch_sparse_csr,
)

S2, HALF = 2**-0.5, 0.5


def test_normalized_adjacency_of_a_hand_computed_2x2_graph():
    # user 0 likes items 0 and 1, user 1 likes item 1: degrees u0=2, u1=1, i0=1, i1=2
    ratings = sp.csr_matrix(np.array([[1.0, 1.0], [0.0, 1.0]]))
    expected = np.array([
        [0, 0, 1 / np.sqrt(2 * 1), 1 / np.sqrt(2 * 2)],
        [0, 0, 0, 1 / np.sqrt(1 * 2)],
        [1 / np.sqrt(1 * 2), 0, 0, 0],
        [1 / np.sqrt(2 * 2), 1 / np.sqrt(2 * 1), 0, 0],
    ], dtype=np.float32)
    normalized = normalized_bipartite_adjacency(ratings)
    np.testing.assert_allclose(normalized.toarray(), expected, rtol=1e-6)
    assert normalized.dtype == np.float32 and expected[0, 3] == HALF and expected[1, 3] == np.float32(S2)


def test_isolated_nodes_and_repeated_interactions():
    # user 1 and item 2 have no interactions; the repeated (0, 0) entry counts once
    ratings = sp.csr_matrix((np.array([2.0, 1.0]), (np.array([0, 0]), np.array([0, 1]))), shape=(2, 3))
    adjacency = bipartite_adjacency(ratings)
    assert adjacency.shape == (5, 5) and adjacency[0, 2] == 1.0
    normalized = normalized_bipartite_adjacency(ratings).toarray()
    assert np.isfinite(normalized).all()
    assert not normalized[1].any() and not normalized[4].any()
    np.testing.assert_allclose(normalized[0, 2], S2, rtol=1e-6)


def test_torch_sparse_conversion_keeps_values():
    matrix = normalized_bipartite_adjacency(sp.random(6, 5, density=0.4, random_state=0, format="csr"))
    tensor = to_torch_sparse_csr(matrix)
    assert tensor.layout == torch.sparse_csr and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.to_dense().numpy(), matrix.toarray())


def test_propagation_and_its_gradient_match_dense_autograd():
    normalized = normalized_bipartite_adjacency(sp.random(7, 6, density=0.4, random_state=1, format="csr"))
    dense = torch.from_numpy(normalized.toarray())
    embeddings = torch.randn(13, 3, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(13, 3, generator=torch.Generator().manual_seed(1))
    for adjacency in (to_torch_sparse_csr(normalized), to_torch_sparse_csr(normalized).to_sparse_coo()):
        ours = embeddings.clone().requires_grad_(True)
        output = propagate_layer_mean(adjacency, ours, 3)
        (output * weights).sum().backward()
        reference = embeddings.clone().requires_grad_(True)
        layers = [reference]
        for _ in range(3):
            layers.append(dense @ layers[-1])
        expected = torch.stack(layers).mean(0)
        (expected * weights).sum().backward()
        torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-5, atol=1e-6)


def test_published_embeddings_are_what_score_uses(checkerboard):
    model = LightGCN(embedding_size=8, n_layers=2, epochs=3, seed=0).fit(checkerboard)
    assert model.user_embeddings_.shape == (60, 8) and model.item_embeddings_.shape == (40, 8)
    torch.testing.assert_close(model.score([0, 59]), model.user_embeddings_[[0, 59]] @ model.item_embeddings_.T)
    assert model.best_epoch_ == 3 and len(model.loss_history_) == 3


def test_propagated_rows_equal_the_full_propagation_and_its_gradient():
    normalized = to_torch_sparse_csr(normalized_bipartite_adjacency(sp.random(8, 7, density=0.4, random_state=2)))
    embeddings = torch.randn(15, 4, generator=torch.Generator().manual_seed(2))
    rows = torch.tensor([0, 5, 9, 14])
    weights = torch.randn(4, 4, generator=torch.Generator().manual_seed(3))
    for n_layers in (0, 1, 3):
        ours, reference = embeddings.clone().requires_grad_(True), embeddings.clone().requires_grad_(True)
        output = propagated_rows(normalized, ours, rows, n_layers)
        expected = propagate_layer_mean(normalized, reference, n_layers)[rows]
        (output * weights).sum().backward()
        (expected * weights).sum().backward()
        torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-5, atol=1e-6)


def test_parallel_and_serial_csr_matmul_match_scipy():
    from prismrec.models.graph import SERIAL_PRODUCT_SIZE, csr_matmul

    matrix = sp.random(300, 200, density=0.05, format="csr", dtype=np.float32, random_state=3)
    for columns in (17, 64):  # 3,000 x 17 multiply-adds run serially, 3,000 x 64 in parallel
        assert (matrix.nnz * columns < SERIAL_PRODUCT_SIZE) == (columns == 17)
        dense = np.random.default_rng(3).random((200, columns), dtype=np.float32)
        np.testing.assert_allclose(csr_matmul(matrix, dense), matrix @ dense, rtol=1e-5, atol=1e-6)


def test_threads_one_holds_after_the_parallel_kernel():
    import subprocess
    import sys

    code = ("import torch, numpy as np, scipy.sparse as sp\n"
            "torch.set_num_threads(1)\n"
            "from prismrec.models.graph import csr_matmul\n"  # 16,000 x 16 multiply-adds: the parallel kernel
            "matrix = sp.random(400, 400, density=0.1, format='csr', dtype=np.float32)\n"
            "csr_matmul(matrix, np.ones((400, 16), np.float32))\n"
            "print(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "1", out.stderr
