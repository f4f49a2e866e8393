"""End-to-end VBPR over a tiny BERT: the recommendation loss reaches the text tower's LoRA tensors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_checkerboard

import prismrec.encoders  # noqa: F401
from tiny_models import colour_catalog, one_torch_thread, tiny_bert  # noqa: F401  (fixtures)
from prismrec.adapt import AdaptationConfig
from prismrec.adapt.end2end import End2EndItemEncoder, TrainableItemFeatures, attach_item_feature_modules
from prismrec.encoders.registry import create_encoder
from prismrec.models import BPR, VBPR
from prismrec.models.base import Recommender


@pytest.fixture(scope="module")
def text_encoder(tiny_bert):
    return create_encoder(f"text:{tiny_bert}", template="{description}")


def _encoder(text_encoder, catalog, store, adaptation="lora", **options):
    return End2EndItemEncoder.from_encoder(text_encoder, catalog, store,
                                           AdaptationConfig(adaptation, max_seq_length=16), **options)


def test_recommendation_loss_trains_the_encoder_and_not_a_frozen_copy(text_encoder, colour_catalog, tmp_path):
    train = make_checkerboard(n_users=30, n_items=40)  # items i0..i39, the catalogue's rows
    encoder = _encoder(text_encoder, colour_catalog, tmp_path / "store")
    copy = encoder.fresh_copy()
    assert copy.text.hidden is encoder.text.hidden  # the cached lower states are shared, not copied
    before = {name: value.detach().clone() for name, value in encoder.named_parameters()}
    initial = encoder.encode_all()
    model = VBPR(feature_names=("text",), factors=4, visual_factors=4, epochs=3, batch_size=64, learning_rate=0.05)
    model.set_item_feature_modules({"text": encoder})
    model.fit(train, item_features={"text": initial.numpy()})
    trainable = {name for name, value in encoder.named_parameters() if value.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    for name, value in encoder.named_parameters():
        assert torch.equal(value, before[name]) != (name in trainable), name  # only the LoRA tensors moved
    for name, value in copy.named_parameters():
        assert torch.equal(value, before[name]), name
    assert not torch.allclose(encoder.encode_all(), initial, atol=1e-4)
    features = torch.nn.functional.normalize(encoder.encode_all(), dim=1)
    # the published scoring state is the final encoder's: item_visual_embeddings_ lies in the span E^T f_i
    projection = torch.linalg.lstsq(features, model.item_visual_embeddings_).solution
    torch.testing.assert_close(features @ projection, model.item_visual_embeddings_, atol=1e-4, rtol=1e-4)


def test_early_stopping_restores_the_encoder_of_the_best_epoch(text_encoder, colour_catalog, tmp_path):
    train = make_checkerboard(n_users=30, n_items=40)
    rng = np.random.default_rng(0)
    pairs = pd.DataFrame({"user": [f"u{u}" for u in rng.integers(0, 30, 80)],
                          "item": [f"i{i}" for i in rng.integers(0, 40, 80)]})
    valid = type(train).from_frame(pairs, users=train.users, items=train.items)
    encoder = _encoder(text_encoder, colour_catalog, tmp_path / "store")
    model = VBPR(feature_names=("text",), factors=4, visual_factors=4, epochs=8, batch_size=64, learning_rate=0.2,
                 eval_every=1, patience=10, early_stopping_metric="ndcg@5")
    model.set_item_feature_modules({"text": encoder}).fit(train, valid=valid,
                                                          item_features={"text": encoder.encode_all().numpy()})
    assert model.best_epoch_ < 8  # (seeded) the last epoch is not the best, so a stale encoder would show
    features = torch.nn.functional.normalize(encoder.encode_all(), dim=1)
    torch.testing.assert_close(features @ model.feature_projection_, model.item_visual_embeddings_,
                               atol=1e-5, rtol=1e-5)


def test_saved_end_to_end_model_scores_without_the_encoder(text_encoder, colour_catalog, tmp_path):
    train = make_checkerboard(n_users=30, n_items=40)
    encoder = _encoder(text_encoder, colour_catalog, tmp_path / "store", "adapter")
    model = VBPR(feature_names=("text",), factors=4, visual_factors=4, epochs=2, batch_size=64)
    model.set_item_feature_modules({"text": encoder}).fit(train, item_features={"text": encoder.encode_all().numpy()})
    loaded = Recommender.load(model.save(tmp_path / "model"))
    torch.testing.assert_close(loaded.score([0, 1, 2]), model.score([0, 1, 2]))


def test_nothing_trainable_and_models_without_support_fail_clearly(text_encoder, colour_catalog, tmp_path):
    with pytest.raises(ValueError, match="end2end needs an encoder with something trainable"):
        _encoder(text_encoder, colour_catalog, tmp_path / "store", "none")
    with_head = _encoder(text_encoder, colour_catalog, tmp_path / "store", "none", head_dim=5)
    assert with_head.dim == 5 and [p.shape for p in with_head.trainable_parameters()] == [(5, 32), (5,)]
    with pytest.raises(ValueError, match="BPR cannot train an encoder end to end"):
        attach_item_feature_modules(BPR(), {"text": with_head}, "models[0]")
    with pytest.raises(ValueError, match="not among feature_names"):
        VBPR(feature_names=("image",)).set_item_feature_modules({"text": with_head})
    arrays = {"text": np.zeros((40, 5), np.float32)}
    with pytest.raises(ValueError, match="'standard' cannot be used with end-to-end"):
        TrainableItemFeatures(arrays, ("text",), "standard", {"text": with_head})
    with pytest.raises(ValueError, match="covers 40 items, but the model trains on 39"):
        TrainableItemFeatures({"text": np.zeros((39, 5), np.float32)}, ("text",), "l2", {"text": with_head})
