"""Every registered model either serves as an inner product (and keeps doing so after add_items)
or is refused with a clear error; nothing is served with scores that differ from ``score``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from serving_bundles import tiny_train
from prismrec.models import available_models, create_model
from prismrec.serving.factors import factor_view

#: scores that are not an inner product of published vectors (a sparse item-item graph)
NOT_INNER_PRODUCT = {"itemknn_cbf"}
FAST = {"epochs": 2, "patience": 1}


def tiny_model(name: str):
    model = create_model(name)
    params = {key: value for key, value in FAST.items() if key in model.get_params()}
    for key in ("embedding_size", "factors", "visual_factors", "latent_size", "feature_embedding_size"):
        if key in model.get_params():
            params[key] = 4
    if "knn_k" in model.get_params():
        params["knn_k"] = 3
    return create_model(name, params)


@pytest.mark.parametrize("name", available_models())
def test_served_scores_equal_the_models_scores(name):
    train = tiny_train()
    model = tiny_model(name)
    rng = np.random.default_rng(0)
    features = {feature: rng.normal(size=(train.n_items, 6)).astype(np.float32)
                for feature in model.required_features_for_fit()}
    model.fit(train, item_features=features)
    if name in NOT_INNER_PRODUCT:
        with pytest.raises(TypeError, match="no inner-product form for serving"):
            factor_view(model)
        return
    view = factor_view(model)
    users = np.arange(train.n_users)
    torch.testing.assert_close(view.user_vectors @ view.item_vectors.T, model.score(users).float(),
                               rtol=1e-4, atol=1e-4)
    if features:  # a content model: new items keep the equality
        model.add_items({feature: array[:2] for feature, array in features.items()})
        view = factor_view(model)
        assert view.item_vectors.shape[0] == train.n_items + 2
        torch.testing.assert_close(view.user_vectors @ view.item_vectors.T, model.score(users).float(),
                                   rtol=1e-4, atol=1e-4)
