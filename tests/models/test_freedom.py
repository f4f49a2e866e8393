"""FREEDOM-specific checks: cold items from content neighbours, the graph cache, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
from prismrec.models import FREEDOM

FAST = {"embedding_size": 16, "knn_k": 5, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_cold_item_with_the_content_of_a_popular_item_ranks_high():
    train, features, cold, _ = cold_twin_data()
    text = features[:, ::-1].copy()  # a second modality with the same structure
    model = FREEDOM(**FAST).fit(train, item_features={"image": features, "text": text})
    assert_cold_twin_ranks_high(model, train, cold)


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
    images = np.ones((40, 3), dtype=np.float32)
    images[2] = np.inf
    with pytest.raises(ValueError, match=r"FREEDOM: item feature 'image' has NaN or infinite values in 1 of 40 rows"):
        FREEDOM(feature_names=("image",)).fit(checkerboard, item_features={"image": images})
    with pytest.raises(ValueError, match=r"'text' must be \[n_items=40, d\], got shape \(30, 3\)"):
        FREEDOM().fit(checkerboard, item_features={"image": np.ones((40, 3)), "text": np.ones((30, 3))})
    with pytest.raises(ValueError, match=r"modality weights must be non-negative"):
        FREEDOM(feature_names=("image",), modality_weights={"image": -1.0}, epochs=1).fit(
            checkerboard, item_features={"image": np.random.default_rng(0).random((40, 3))})
