"""BM3-specific checks: no collapse, cold items from the content branch, no negatives needed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
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


def test_cold_item_with_the_content_of_a_popular_item_ranks_high(fitted):
    model, train, cold = fitted
    assert_cold_twin_ranks_high(model, train, cold)


def test_bad_inputs_raise_clear_errors(checkerboard):
    with pytest.raises(ValueError, match=r"dropout .* must be in \[0, 1\), got -0.1"):
        BM3(dropout=-0.1)
    with pytest.raises(ValueError, match=r"BM3 needs the item feature array 'text'"):
        BM3().fit(checkerboard, item_features={"image": np.ones((40, 3))})
    images = np.ones((40, 3), dtype=np.float32)
    images[39] = np.nan
    with pytest.raises(ValueError, match=r"BM3: item feature 'image' has NaN or infinite values in 1 of 40 rows"):
        BM3(feature_names=("image",)).fit(checkerboard, item_features={"image": images})
