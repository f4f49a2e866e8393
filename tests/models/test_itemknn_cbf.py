"""ItemKNN-CBF: hand-computed scores, cold items scored from content, items without content."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
from conftest import make_checkerboard
from prismrec.data import IdMap, Interactions
from prismrec.models import ItemKNNCBF
from prismrec.models.content import ContentNotice


def tiny_interactions(pairs, n_users: int, n_items: int) -> Interactions:
    frame = pd.DataFrame(pairs, columns=["user", "item"]).astype(str)
    return Interactions.from_frame(frame, users=IdMap([str(u) for u in range(n_users)]),
                                   items=IdMap([str(i) for i in range(n_items)]))


def test_scores_equal_hand_computed_neighbour_sums():
    # unit vectors: cos(0,1)=0.8, cos(0,2)=0.6, cos(1,2)=0.96, cos(·,3)=0
    features = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    train = tiny_interactions([(0, 0), (1, 1), (1, 3)], n_users=2, n_items=4)
    model = ItemKNNCBF(feature_names=("text",), knn_k=2, shrink=0.0).fit(train, item_features={"text": features})
    # neighbours (k=2, self included): 0 -> {0, 1}, 1 -> {1, 2}, 2 -> {2, 1}, 3 -> {3, one tie}
    scores = model.score([0, 1]).numpy()
    np.testing.assert_allclose(scores[0], [1.0, 0.8, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(scores[1][:3], [0.0, 1.0, 0.96], rtol=1e-5)
    assert scores[1][3] == pytest.approx(1.0)
    shrunk = ItemKNNCBF(feature_names=("text",), knn_k=2, shrink=1.0).fit(train, item_features={"text": features})
    np.testing.assert_allclose(shrunk.score([0]).numpy()[0], [0.5, 0.4, 0.0, 0.0], rtol=1e-6)  # x·y / (1·1 + 1)


def test_cold_item_with_the_content_of_a_popular_item_ranks_high():
    train, features, cold, _ = cold_twin_data()
    model = ItemKNNCBF(feature_names=("image",), knn_k=5).fit(train, item_features={"image": features})
    ranks = assert_cold_twin_ranks_high(model, train, cold, share=1.0)
    assert np.median(ranks[:30]) <= 2  # near the top: the twin of an item in most histories


def test_cold_items_without_content_are_counted_in_a_warning():
    data = make_checkerboard()
    train = data.subset(~np.isin(data.item_index, [0, 1, 2]))
    features = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    features[[1, 2, 5]] = 0.0  # items 1 and 2 are cold and blank; item 5 is warm and blank
    with pytest.warns(ContentNotice, match=r"2 items never seen in training have no content .*first: item 1"):
        model = ItemKNNCBF(feature_names=("image",)).fit(train, item_features={"image": features})
    scores = model.score(np.arange(60))
    assert torch.isfinite(scores).all() and not scores[:, [1, 2, 5]].any()


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="knn_k must be at least 1"):
        ItemKNNCBF(knn_k=0)
    with pytest.raises(ValueError, match="at least one item feature name"):
        ItemKNNCBF(feature_names=())
