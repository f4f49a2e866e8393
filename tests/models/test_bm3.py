"""BM3-specific checks: no collapse, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cold_twin import cold_twin_data
from prismrec.models import BM3

FAST = {"embedding_size": 16, "epochs": 30, "learning_rate": 0.02, "patience": 30}


@pytest.fixture(scope="module")
def fitted():
    train, features, cold, _ = cold_twin_data()
    model = BM3(**FAST).fit(train, item_features={"image": features, "text": features[:, ::-1].copy()})
    return model, train, cold


def test_embeddings_do_not_collapse(fitted):
    """A collapsed BM3 maps every user (or item) to one direction and ranks alike for all."""
    model, train, _ = fitted
    users = torch.nn.functional.normalize(model.user_embeddings_, dim=1)
    items = torch.nn.functional.normalize(model.item_embeddings_, dim=1)
    assert (items @ items.T).mean() < 0.5 and (users @ users.T).mean() < 0.5
    blocks = (np.arange(60) >= 30).astype(int)
    same_block = torch.from_numpy(blocks[:, None] == blocks[None, :])
    similarity = users @ users.T
    assert similarity[same_block].mean() > similarity[~same_block].mean() + 0.5  # the communities stay apart


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match=r"dropout .* must be in \[0, 1\), got -0.1"):
        BM3(dropout=-0.1)
