"""The contract every registered recommender passes, on the checkerboard with known answers.

Two communities: users of block 0 only interact with items of block 0, and the same for
block 1. The best ranking for a user is therefore all unseen own-block items first.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prismrec.data.splits import per_user_ratio
from prismrec.evaluation.evaluator import Evaluator
from prismrec.models import NotFittedError, Recommender, available_models, create_model, get_model_class, register
from conftest import block_of_items, make_checkerboard

N_USERS, N_ITEMS, TOP_K = 60, 40, 5

#: small, fast settings for the tiny data; models not listed here use their defaults
CONTRACT_PARAMS = {
    "bpr": {"factors": 16, "epochs": 40, "learning_rate": 0.05, "patience": 10},
    "lightgcn": {"embedding_size": 16, "n_layers": 2, "epochs": 40, "learning_rate": 0.05, "patience": 10},
    "vbpr": {"factors": 8, "visual_factors": 8, "epochs": 40, "learning_rate": 0.05, "patience": 10},
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
