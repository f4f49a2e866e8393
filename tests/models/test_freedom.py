"""FREEDOM-specific checks: the graph cache and bad settings (cold items and bad features: the contract suite)."""
from __future__ import annotations

import numpy as np
import pytest

from cold_twin import cold_twin_data
from prismrec.models import FREEDOM

FAST = {"embedding_size": 16, "knn_k": 5, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_item_graphs_are_cached_per_modality_and_rebuilt_for_new_features(tmp_path):
    train, features, _, _ = cold_twin_data()
    settings = {**FAST, "epochs": 1, "feature_names": ("image", "text"), "graph_cache_dir": str(tmp_path)}
    first = FREEDOM(**settings).fit(train, item_features={"image": features, "text": features * 2})
    assert len(list(tmp_path.glob("*.npz"))) == 2  # one graph per modality
    again = FREEDOM(**settings).fit(train, item_features={"image": features, "text": features * 2})
    np.testing.assert_array_equal(again.item_embeddings_.numpy(), first.item_embeddings_.numpy())
    assert len(list(tmp_path.glob("*.npz"))) == 2  # read back, not rebuilt
    FREEDOM(**settings).fit(train, item_features={"image": features, "text": features[::-1].copy()})
    assert len(list(tmp_path.glob("*.npz"))) == 3  # new text content: a new text graph
    FREEDOM(**{**settings, "knn_k": 3}).fit(train, item_features={"image": features, "text": features * 2})
    assert len(list(tmp_path.glob("*.npz"))) == 5  # new parameters: both graphs rebuilt


def test_bad_inputs_raise_clear_errors(checkerboard):
    with pytest.raises(ValueError, match=r"dropout .* must be in \[0, 1\), got 1.0"):
        FREEDOM(dropout=1.0)
    with pytest.raises(ValueError, match=r"modality weights must be non-negative"):
        FREEDOM(feature_names=("image",), modality_weights={"image": -1.0}, epochs=1).fit(
            checkerboard, item_features={"image": np.random.default_rng(0).random((40, 3))})


def test_the_auxiliary_content_loss_projects_the_difference_once():
    """FREEDOM's content BPR term: ``W(f_i - f_j)`` equals ``(W f_i + b) - (W f_j + b)``, so the
    loss and every gradient match the two-projection form, and the bias gets no gradient."""
    import torch

    from prismrec.models.module_training import bpr_loss, projected_bpr_loss

    torch.manual_seed(0)
    users, positives, negatives = torch.randn(16, 4), torch.randn(16, 8), torch.randn(16, 8)
    losses, grads = [], []
    for once in (False, True):
        projection = torch.nn.Linear(8, 4)
        torch.nn.init.constant_(projection.bias, 0.5)
        with torch.no_grad():
            projection.weight.copy_(torch.arange(32.0).view(4, 8) / 32)
        loss = (projected_bpr_loss(users, projection, positives, negatives) if once
                else bpr_loss(users, projection(positives), projection(negatives)))
        loss.backward()
        losses.append(loss.item())
        grads.append((projection.weight.grad.clone(), projection.bias.grad))
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-6, rtol=1e-5)
    assert grads[1][1] is None and grads[0][1].abs().max().item() < 1e-6
