"""LATTICE-specific checks: the sparse item graph equals the paper's dense computation
(values and gradients), its size is O(N*k), learned modality weights, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cold_twin import cold_twin_data
from prismrec.models import LATTICE
from prismrec.models.content import item_content_graph
from prismrec.models.graph import propagate_entries
from prismrec.models.lattice import lattice_item_graph

FAST = {"embedding_size": 16, "feature_embedding_size": 8, "knn_k": 5, "epochs": 25, "learning_rate": 0.02,
        "patience": 25}


def dense_knn_laplacian(features: torch.Tensor, k: int) -> torch.Tensor:
    """The paper's dense formulas: cosine similarities, top-k per row, D^-1/2 A D^-1/2."""
    unit = features / features.norm(dim=1, keepdim=True)
    similarity = unit @ unit.T
    values, indices = similarity.topk(k, dim=1)
    return torch.zeros_like(similarity).scatter(1, indices, values)


def dense_normalize(adjacency: torch.Tensor) -> torch.Tensor:
    inverse_sqrt = adjacency.sum(1).pow(-0.5)
    return inverse_sqrt[:, None] * adjacency * inverse_sqrt[None, :]


def test_sparse_item_graph_equals_the_dense_computation_with_its_gradients():
    rng = np.random.default_rng(0)
    raw = [rng.normal(size=(30, 6)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)]
    projections = [torch.nn.Linear(6, 5), torch.nn.Linear(4, 5)]
    logits = torch.nn.Parameter(torch.tensor([0.3, -0.2]))
    frozen = [sp.coo_matrix(item_content_graph(array, k=4, binary=False)) for array in raw]
    frozen_entries = [(torch.from_numpy(g.row.astype(np.int64)), torch.from_numpy(g.col.astype(np.int64)),
                       torch.from_numpy(g.data)) for g in frozen]
    item_ids = torch.nn.Parameter(torch.randn(30, 3, generator=torch.Generator().manual_seed(0)))

    def sparse_output():
        projected = [p(torch.from_numpy(a)) for p, a in zip(projections, raw)]
        rows, columns, values = lattice_item_graph(projected, frozen_entries, torch.softmax(logits, 0), 4, 0.9)
        assert len(values) == 2 * 2 * 30 * 4  # learned + frozen, per modality, N * k entries each
        return propagate_entries(rows, columns, values, item_ids)  # what the model trains through

    def dense_output():
        weights = torch.softmax(logits, 0)
        projected = [p(torch.from_numpy(a)) for p, a in zip(projections, raw)]
        learned = dense_normalize(sum(w * dense_knn_laplacian(x, 4) for w, x in zip(weights, projected)))
        original = sum(w * torch.from_numpy(g.toarray()) for w, g in zip(weights, frozen))
        return (0.1 * learned + 0.9 * original) @ item_ids

    parameters = [logits, *projections[0].parameters(), *projections[1].parameters(), item_ids]
    gradients = []
    for compute in (sparse_output, dense_output):
        for parameter in parameters:
            parameter.grad = None
        output = compute()
        (output * torch.arange(90.0).view(30, 3)).sum().backward()
        gradients.append((output.detach(), [parameter.grad.clone() for parameter in parameters]))
    torch.testing.assert_close(gradients[0][0], gradients[1][0], rtol=1e-4, atol=1e-5)
    for ours, reference in zip(gradients[0][1], gradients[1][1]):
        torch.testing.assert_close(ours, reference, rtol=1e-3, atol=1e-4)
    assert gradients[0][1][0].abs().sum() > 0  # the modality weights learn


def test_learned_modality_weights_are_published_as_a_softmax():
    train, features, _, _ = cold_twin_data()
    item_features = {"image": features, "text": features[::-1].copy()}
    model = LATTICE(**{**FAST, "epochs": 3}).fit(train, item_features=item_features)
    assert model.modality_weights_.shape == (2,) and model.modality_weights_.sum().item() == pytest.approx(1.0)
    assert model.modality_weights_[0] != 0.5  # the weights learn from the first batch of each epoch


def test_bad_inputs_raise_clear_errors(checkerboard):
    with pytest.raises(ValueError, match=r"lambda_coeff .* must be in \[0, 1\], got 1.5"):
        LATTICE(lambda_coeff=1.5)
    with pytest.raises(ValueError, match=r"'image' must be \[n_items=40, d\], got shape \(40,\)"):
        LATTICE(feature_names=("image",)).fit(checkerboard, item_features={"image": np.ones(40)})
