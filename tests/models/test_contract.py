"""The contract every registered recommender passes, on the checkerboard with known answers.

Two communities: users of block 0 only interact with items of block 0, and the same for
block 1. The best ranking for a user is therefore all unseen own-block items first.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cold_twin import assert_cold_twin_ranks_high, cold_twin_data
from prismrec.data.splits import cold_start_items, per_user_ratio
from prismrec.evaluation.evaluator import Evaluator
from prismrec.models import NotFittedError, Recommender, available_models, create_model, get_model_class, register
from conftest import block_of_items, make_checkerboard

N_USERS, N_ITEMS, TOP_K = 60, 40, 5

#: small, fast settings for the tiny data; models not listed here use their defaults
CONTRACT_PARAMS = {
    "bpr": {"factors": 16, "epochs": 40, "learning_rate": 0.05, "patience": 10},
    "lightgcn": {"embedding_size": 16, "n_layers": 2, "epochs": 40, "learning_rate": 0.05, "patience": 10},
    "vbpr": {"factors": 8, "visual_factors": 8, "epochs": 40, "learning_rate": 0.05, "patience": 10},
    "freedom": {"embedding_size": 16, "knn_k": 5, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "bm3": {"embedding_size": 16, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "lgmrec": {"embedding_size": 16, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "grcn": {"embedding_size": 16, "latent_size": 8, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "slmrec": {"embedding_size": 16, "n_layers": 2, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "mmgcl": {"embedding_size": 16, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "mmgcn": {"embedding_size": 16, "latent_size": 16, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "mgcn": {"embedding_size": 16, "knn_k": 5, "epochs": 30, "learning_rate": 0.02, "patience": 10},
    "lattice": {"embedding_size": 16, "feature_embedding_size": 8, "knn_k": 5, "epochs": 30, "learning_rate": 0.02,
                "patience": 10},
    "foundation": {"preset": "tiny", "epochs": 8, "learning_rate": 0.01, "batch_size": 32, "n_clusters": 2,
                   "leaf_size": 8, "beam_size": 0, "validation_users": 0, "tokenizer_vocab": 100,
                   "dropout": 0.0, "patience": 8},
    "sasrec": {"hidden_size": 16, "epochs": 40, "learning_rate": 0.01, "batch_size": 16, "max_length": 10,
               "dropout": 0.1, "patience": 10},
}
#: models whose ranking is not collaborative: exempt from the own-block assertion
NOT_PERSONALISED = {"mostpop"}

ALL_MODELS = available_models()
_FITTED: dict[str, Recommender] = {}
#: content models whose scores are sums over a sparse item graph (most items score 0 for a user)
SPARSE_SCORES = {"itemknn_cbf"}
#: models that read item content (they declare feature arrays)
CONTENT_MODELS = [name for name in ALL_MODELS if create_model(name).required_features_for_fit()]


def informative_features(n_items: int = N_ITEMS, dim: int = 8, seed: int = 1) -> np.ndarray:
    """A one-hot of each item's checkerboard block in the first two columns, plus noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0.0, 0.1, size=(n_items, dim)).astype(np.float32)
    features[np.arange(n_items), block_of_items(n_items)] += 1.0
    return features


def features_for(model: Recommender) -> dict[str, np.ndarray]:
    return {name: informative_features(seed=1 + i) for i, name in enumerate(model.required_features_for_fit())}


def build(name: str, **overrides) -> Recommender:
    return create_model(name, {**CONTRACT_PARAMS.get(name, {}), **overrides})


@pytest.fixture(scope="module")
def split():
    return per_user_ratio(make_checkerboard(N_USERS, N_ITEMS), (0.7, 0.1, 0.2), seed=0)


def fitted(name: str, split) -> Recommender:
    """Fit each model once per test module and share it between the read-only tests."""
    if name not in _FITTED:
        model = build(name)
        _FITTED[name] = model.fit(split.train, split.valid, item_features=features_for(model))
    return _FITTED[name]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_scores_are_float32_users_by_items(name, split):
    scores = fitted(name, split).score(np.arange(7))
    assert isinstance(scores, torch.Tensor)
    assert scores.dtype == torch.float32 and scores.shape == (7, N_ITEMS)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if n not in NOT_PERSONALISED])
def test_top_k_is_the_users_own_block(name, split):
    model = fitted(name, split)
    test_users = split.test.active_users()
    items, _ = model.recommend(test_users, k=TOP_K, exclude=split.train)
    blocks = block_of_items(N_ITEMS)
    user_block = (test_users >= N_USERS // 2).astype(int)
    seen = split.train.matrix
    checked = 0
    for row, user in enumerate(test_users):
        own_unseen = np.setdiff1d(np.flatnonzero(blocks == user_block[row]), seen[user].indices)
        if len(own_unseen) < TOP_K:
            continue
        checked += 1
        assert (blocks[items[row]] == user_block[row]).all(), (
            f"{name}: user {user} (block {user_block[row]}) got items {items[row].tolist()}")
    assert checked >= len(test_users) // 2  # the assertion covered most users


@pytest.mark.parametrize("name", ALL_MODELS)
def test_recommend_never_returns_training_items(name, split):
    users = np.arange(N_USERS)
    items, scores = fitted(name, split).recommend(users, k=15, exclude=split.train, batch_size=16)
    assert items.shape == scores.shape == (N_USERS, 15)
    seen = split.train.matrix
    for user in users:
        assert not np.isin(items[user], seen[user].indices).any()
    assert (np.diff(scores, axis=1) <= 0).all()  # best first


@pytest.mark.parametrize("name", ALL_MODELS)
def test_save_load_round_trip_gives_identical_scores(name, split, tmp_path):
    model = fitted(name, split)
    model.save(tmp_path / name)
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["model"] == name
    for loaded in (Recommender.load(tmp_path / name), get_model_class(name).load(tmp_path / name)):
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        assert torch.equal(loaded.score(np.arange(N_USERS)), model.score(np.arange(N_USERS)))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fit_is_deterministic_for_a_seed(name, split):
    first = fitted(name, split)
    second = build(name)
    second.fit(split.train, split.valid, item_features=features_for(second))
    assert torch.equal(first.score(np.arange(N_USERS)), second.score(np.arange(N_USERS)))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_early_stopping_keeps_the_best_validated_state(name, split):
    model = fitted(name, split)
    if not hasattr(model, "validation_history_"):
        pytest.skip(f"{name} is not trained iteratively")
    epochs, values = zip(*model.validation_history_)
    assert model.best_epoch_ == epochs[int(np.argmax(values))]
    metric = model.get_params()["early_stopping_metric"]
    name_, _, k = metric.partition("@")
    if hasattr(model, "use_history"):  # sequential models validate from the training history only
        model.use_history(split.train)
    again = Evaluator(ks=(int(k),), metrics=(name_,)).evaluate(model, split.valid, exclude=split.train)
    if hasattr(model, "use_history"):
        model.use_history(split.train, split.valid)  # back to the test-time history
    assert again[metric] == pytest.approx(max(values))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_unfitted_model_raises_not_fitted(name, tmp_path):
    model = build(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.score([0])
    with pytest.raises(NotFittedError):
        model.recommend([0], k=3)
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "never")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_create_model_rejects_unknown_hyperparameters(name):
    with pytest.raises(TypeError, match="no_such_setting"):
        create_model(name, {"no_such_setting": 1})


@pytest.mark.parametrize("name", ALL_MODELS)
def test_hyperparameters_are_explicit_and_json_serialisable(name):
    model = build(name)
    params = json.loads(json.dumps(model.get_params()))
    assert create_model(name, params).get_params() == model.get_params()
    assert repr(model).startswith(type(model).__name__ + "(")


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="'bpr' is already registered"):
        register("bpr", get_model_class("bpr"))
    with pytest.raises(ValueError, match="already registered"):
        register("BPR", get_model_class("mostpop"))  # names are case-insensitive
    with pytest.raises(KeyError, match="unknown model 'no-such-model'.*bpr"):
        get_model_class("no-such-model")
    with pytest.raises(TypeError, match="expected a Recommender subclass"):
        register("not-a-model", dict)
    assert {"mostpop", "bpr", "lightgcn", "vbpr"} <= set(ALL_MODELS)


def modality_variants(names, features: np.ndarray) -> dict[str, np.ndarray]:
    """One array per name with the same block structure (reversed columns, then shifted)."""
    return {name: (features[:, ::-1] if i % 2 else features) + 0.1 * (i // 2) for i, name in enumerate(names)}


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_cold_item_with_the_content_of_a_popular_item_ranks_high(name):
    """The item never occurs in training; only its content (a popular item's) can place it."""
    train, features, cold, _ = cold_twin_data()
    model = build(name)
    model.fit(train, item_features=modality_variants(model.required_features_for_fit(), features))
    assert_cold_twin_ranks_high(model, train, cold)


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_cold_start_item_split_ranks_cold_items_by_content(name):
    """On a cold-start item split, each test user's best cold items are of the user's own block."""
    split = cold_start_items(make_checkerboard(N_USERS, N_ITEMS), cold_fraction=0.3, seed=0)
    model = build(name)
    model.fit(split.train, split.valid, item_features=features_for(model))
    users = split.test.active_users()
    cold = torch.from_numpy(split.cold_items)
    best = cold[model.score(users)[:, cold].topk(2, dim=1).indices]
    own_block = torch.from_numpy(block_of_items(N_ITEMS))[best] == torch.from_numpy(users >= N_USERS // 2)[:, None]
    assert torch.isfinite(model.score(users)).all()
    assert own_block.float().mean() >= 0.9, f"{name}: best cold items {best.tolist()} for users {users.tolist()}"


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_cold_items_without_any_content_are_counted_in_a_warning(name):
    from prismrec.models.content import ContentNotice

    split = cold_start_items(make_checkerboard(N_USERS, N_ITEMS), cold_fraction=0.3, seed=0)
    model = build(name, **({"epochs": 1} if "epochs" in model_params(name) else {}))
    features = features_for(model)
    blank = split.cold_items[:2]
    features = {key: value.copy() for key, value in features.items()}
    for value in features.values():
        value[blank] = 0.0  # no poster, no plot: nothing to score these items from
    with pytest.warns(ContentNotice, match=rf"2 items never seen in training have no content .*first: item {blank.min()}"):
        model.fit(split.train, item_features=features)
    assert torch.isfinite(model.score(np.arange(N_USERS))).all()


def model_params(name: str) -> list[str]:
    return list(create_model(name).get_params())


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_bad_feature_arrays_raise_errors_naming_the_feature(name, split):
    model = build(name)
    features = features_for(model)
    first = model.required_features_for_fit()[0]
    wrong_rows = rf"'{first}' must be \[n_items={N_ITEMS}, d\], got shape \({N_ITEMS - 1}, 8\)"
    with pytest.raises(ValueError, match=wrong_rows):
        build(name).fit(split.train, item_features={**features, first: features[first][1:]})
    broken = features[first].copy()
    broken[[3, 7], 1] = np.nan
    not_finite = rf"'{first}' has NaN or infinite values in 2 of {N_ITEMS} rows \(first: row 3\)"
    with pytest.raises(ValueError, match=not_finite):
        build(name).fit(split.train, item_features={**features, first: broken})
    with pytest.raises(ValueError, match=rf"needs the item feature array '{first}'"):
        build(name).fit(split.train, item_features={k: v for k, v in features.items() if k != first})


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_declares_a_valid_search_space(name):
    from prismrec.search_spaces import search_space

    space = search_space(name, get_model_class(name))  # raises on names the model does not accept
    for parameter, spec in space.items():
        trial_value = spec["choices"][0] if spec["type"] == "categorical" else spec["low"]
        build(name, **{parameter: trial_value})  # every value is accepted by __init__


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_add_items_scores_new_items_from_their_content(name, split, tmp_path):
    """Copies of a popular item of each block, added after training (and after save/load), rank
    above the other block's items for the users of their block."""
    fitted(name, split).save(tmp_path / name)
    model = Recommender.load(tmp_path / name)
    features = features_for(model)
    popularity, blocks = split.train.item_popularity(), block_of_items(N_ITEMS)
    copies = [int(np.argmax(np.where(blocks == block, popularity, -1))) for block in (0, 1)]
    assert model.add_items({key: value[copies] for key, value in features.items()}).tolist() == [N_ITEMS, N_ITEMS + 1]
    scores = model.score(np.arange(N_USERS))
    assert scores.shape == (N_USERS, N_ITEMS + 2) and torch.isfinite(scores).all()
    if name in SPARSE_SCORES:  # a copy joins exactly the graph rows its original is in: the same column
        torch.testing.assert_close(scores[:, N_ITEMS:], scores[:, copies])
    else:
        half = N_USERS // 2
        other_best = [scores[:half, N_ITEMS // 2:N_ITEMS].max(1).values, scores[half:, :N_ITEMS // 2].max(1).values]
        assert (scores[:half, N_ITEMS] > other_best[0]).float().mean() >= 0.9
        assert (scores[half:, N_ITEMS + 1] > other_best[1]).float().mean() >= 0.9
    first = model.required_features_for_fit()[0]
    with pytest.raises(ValueError, match=rf"add_items needs the feature arrays \['{first}'\]"):
        model.add_items({key: value[:1] for key, value in features.items() if key != first})
    with pytest.raises(ValueError, match="columns"):
        model.add_items({key: value[:1, :5] for key, value in features.items()})
