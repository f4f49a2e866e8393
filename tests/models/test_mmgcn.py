"""MMGCN-specific checks: preferences and every layer are trained, bad settings."""
from __future__ import annotations

import pytest
import torch

from prismrec.models import MMGCN
from prismrec.models.mmgcn import ModalityGCN
from prismrec.models.module_training import FixedGraph

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


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="n_layers must be at least 1, got 0"):
        MMGCN(n_layers=0)
