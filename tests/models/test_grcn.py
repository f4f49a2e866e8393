"""GRCN-specific checks: edge attention by hand, routing reaches the users, the representation, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cold_twin import cold_twin_data
from prismrec.models import GRCN
from prismrec.models.grcn import attend

FAST = {"embedding_size": 16, "latent_size": 8, "epochs": 20, "learning_rate": 0.02, "patience": 20}


def test_users_gather_their_items_with_softmax_attention():
    # nodes: user 0, user 1, item 2, item 3; user 0 has both items, user 1 has item 3
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    items, users = torch.tensor([2, 3, 3]), torch.tensor([0, 0, 1])
    gathered, alpha = attend(x, items, users, 4)
    a, b = np.exp(2.0), np.exp(0.0)  # user 0's scores: x0·x2 = 2, x0·x3 = 0
    np.testing.assert_allclose(alpha.numpy(), [a / (a + b), b / (a + b), 1.0], rtol=1e-6)
    np.testing.assert_allclose(gathered[0].numpy(), [2 * a / (a + b), b / (a + b)], rtol=1e-6)
    np.testing.assert_allclose(gathered[1].numpy(), [0.0, 1.0])
    assert not gathered[2:].any()  # items are not targets of the routing edges


def test_representation_concatenates_the_id_part_and_one_part_per_modality():
    train, features, _, _ = cold_twin_data()
    item_features = {"image": features, "text": features[:, ::-1].copy()}
    model = GRCN(**{**FAST, "epochs": 2}).fit(train, item_features=item_features)
    # the representation is [ID part (16), one part per modality (8 each)]
    assert model.item_embeddings_.shape == (40, 16 + 2 * 8)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="n_routing must be non-negative"):
        GRCN(n_routing=-1)
