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
