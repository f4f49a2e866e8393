"""MMGCN-specific checks: ID embeddings and preferences are trained, layers, cold items, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
from prismrec.models import MMGCN
from prismrec.models.mmgcn import ModalityGCN
from prismrec.models.module_training import FixedGraph

FAST = {"embedding_size": 16, "latent_size": 16, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_cold_item_with_the_content_of_a_popular_item_ranks_high():
    train, features, cold, _ = cold_twin_data()
    model = MMGCN(**FAST).fit(train, item_features={"image": features, "text": features[:, ::-1].copy()})
    assert_cold_twin_ranks_high(model, train, cold)


def test_preferences_and_every_layer_receive_gradients():
    """MMRec's port leaves the user preferences out of the optimiser; here they learn."""
    import scipy.sparse as sp

    torch.manual_seed(0)
    gcn = ModalityGCN(n_users=3, feature_dim=4, latent_size=5, embedding_size=6, n_layers=3)
    assert len(gcn.convolutions) == 3 and gcn.convolutions[0].shape == (5, 6)
    graph = FixedGraph(sp.random(5, 5, density=0.5, format="csr", random_state=0))
    output = gcn(torch.randn(2, 4), torch.zeros(5, 6), graph)
    assert output.shape == (5, 6)
    output.sum().backward()
    parameters = dict(gcn.named_parameters())
    assert {"preference", "convolutions.0", "convolutions.2"} <= set(parameters)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters.values())


def test_bad_inputs_raise_clear_errors(checkerboard):
    with pytest.raises(ValueError, match="n_layers must be at least 1, got 0"):
        MMGCN(n_layers=0)
    features = np.ones((40, 3), dtype=np.float32)
    features[[5, 6]] = np.nan
    with pytest.raises(ValueError, match=r"MMGCN: item feature 'image' has NaN or infinite values in 2 of 40 rows"):
        MMGCN(feature_names=("image",)).fit(checkerboard, item_features={"image": features})
    with pytest.raises(ValueError, match=r"'image' must be \[n_items=40, d\], got shape \(41, 3\)"):
        MMGCN(feature_names=("image",)).fit(checkerboard, item_features={"image": np.ones((41, 3))})
