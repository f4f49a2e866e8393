"""SLMRec-specific checks: the FAC term, cold items, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
from prismrec.models import SLMRec
from prismrec.models.slmrec import _raw_info_nce

FAST = {"embedding_size": 16, "n_layers": 2, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_fac_info_nce_uses_raw_dot_products():
    first, second = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # logits (temperature 1): [[3, 1], [0, 2]]
    expected = (-np.log(np.exp(3) / (np.exp(3) + np.e)) - np.log(np.exp(2) / (1 + np.exp(2)))) / 2
    assert _raw_info_nce(first, second, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_cold_item_with_the_content_of_a_popular_item_ranks_high():
    train, features, cold, _ = cold_twin_data()
    model = SLMRec(**FAST).fit(train, item_features={"image": features, "text": features[:, ::-1].copy()})
    assert_cold_twin_ranks_high(model, train, cold)


def test_bad_inputs_raise_clear_errors(checkerboard):
    with pytest.raises(ValueError, match="temperatures must be positive"):
        SLMRec(ssl_temperature=0.0)
    features = np.ones((40, 3), dtype=np.float32)
    features[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"SLMRec: item feature 'image' has NaN or infinite values in 1 of 40 rows"):
        SLMRec(feature_names=("image",)).fit(checkerboard, item_features={"image": features})
