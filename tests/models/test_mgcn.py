"""MGCN-specific checks: the InfoNCE term, three modalities, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
from prismrec.models import MGCN
from prismrec.models.mgcn import info_nce

FAST = {"embedding_size": 16, "knn_k": 5, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_info_nce_equals_the_hand_computed_loss():
    view1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    view2 = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosines: row 0 -> [1, 1/sqrt2], row 1 -> [0, 1/sqrt2]; temperature 0.5
    c = 2**-0.5
    expected = (-np.log(np.exp(2) / (np.exp(2) + np.exp(2 * c))) - np.log(np.exp(2 * c) / (1 + np.exp(2 * c)))) / 2
    assert info_nce(view1, view2, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_cold_item_with_the_content_of_a_popular_item_ranks_high_with_three_modalities():
    train, features, cold, _ = cold_twin_data()
    item_features = {"image": features, "text": features[:, ::-1].copy(), "audio": features * 0.5 + 0.1}
    model = MGCN(**FAST, feature_names=("image", "text", "audio")).fit(train, item_features=item_features)
    assert_cold_twin_ranks_high(model, train, cold)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="temperature must be positive"):
        MGCN(temperature=0.0)
