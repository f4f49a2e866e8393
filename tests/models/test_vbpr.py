"""VBPR-specific checks: named features, their fusion, missing-feature errors, cold items."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import block_of_items
from prismrec.models import VBPR
from prismrec.models.vbpr import fuse_features


def block_features(n_items: int = 40, dim: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = rng.normal(0.0, 0.1, size=(n_items, dim)).astype(np.float32)
    features[np.arange(n_items), block_of_items(n_items)] += 1.0
    return features


def test_missing_named_features_raise_a_clear_error(checkerboard):
    with pytest.raises(ValueError, match=r"VBPR needs the item feature array 'image'.*no item features"):
        VBPR(feature_names=("image",)).fit(checkerboard)
    model = VBPR(feature_names=("image", "text"))
    assert model.required_features_for_fit() == ("image", "text")
    with pytest.raises(ValueError, match=r"'text'.*got \['image'\]"):
        model.fit(checkerboard, item_features={"image": block_features()})
    with pytest.raises(ValueError, match=r"'image' must be \[n_items=40, d\], got shape \(39, 6\)"):
        model.fit(checkerboard, item_features={"image": block_features(39), "text": block_features(40)})


def test_fusion_normalises_each_array_then_concatenates():
    image = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    text = np.array([[1.0], [2.0], [6.0]])
    fused = fuse_features({"image": image, "text": text}, ("image", "text"), "l2")
    np.testing.assert_allclose(fused.numpy(), [[0.6, 0.8, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], rtol=1e-6)
    standard = fuse_features({"text": text, "image": image}, ("text", "image"), "standard").numpy()
    np.testing.assert_allclose(standard.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(standard.std(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(standard[:, 0], (text[:, 0] - 3.0) / np.sqrt(14 / 3), rtol=1e-5)
    assert fuse_features({"image": image}, ("image",), "none").dtype == torch.float32
    with pytest.raises(ValueError, match="NaN"):
        fuse_features({"image": np.array([[np.nan, 1.0]])}, ("image",))
    with pytest.raises(ValueError, match="feature_normalization must be one of"):
        VBPR(feature_normalization="minmax")


def test_saved_model_holds_projected_scoring_tensors_only(checkerboard, tmp_path):
    model = VBPR(factors=4, visual_factors=3, epochs=2).fit(checkerboard, item_features={"image": block_features()})
    model.save(tmp_path / "vbpr")
    tensors = load_file(str(tmp_path / "vbpr" / "weights.safetensors"))
    assert {name: tuple(t.shape) for name, t in tensors.items()} == {
        "user_factors_": (60, 4), "user_visual_factors_": (60, 3), "item_factors_": (40, 4),
        "item_visual_embeddings_": (40, 3), "item_bias_": (40,),
        "feature_projection_": (6, 3), "feature_bias_weights_": (6,),  # E and β', for add_items
    }
    loaded = VBPR.load(tmp_path / "vbpr")  # scores without any item features
    assert torch.equal(loaded.score(np.arange(60)), model.score(np.arange(60)))


def test_cold_item_is_ranked_by_its_features(checkerboard):
    """Item 0 (block 0) never occurs in training; only its features can lift it.

    Sampled as a negative for everyone, its latent part is pushed down, so without the
    visual term (plain BPR) it would rank last for every user.
    """
    train = checkerboard.subset(checkerboard.item_index != 0)
    model = VBPR(factors=4, visual_factors=4, epochs=20, learning_rate=0.05, seed=0)
    model.fit(train, item_features={"image": block_features()})
    scores = model.score(np.arange(60))
    block1_items = torch.from_numpy(block_of_items(40) == 1)
    beaten = (scores[:, [0]] > scores[:, block1_items]).float().mean(1)  # share of block-1 items below item 0
    assert beaten[:30].mean() > 0.9  # block-0 users: the cold item sits above the other block
    assert beaten[30:].max() < 0.1  # block-1 users: it stays below their own block


@pytest.mark.parametrize("normalization", ["l2", "standard"])
def test_add_items_scores_a_new_item_from_its_features_alone(checkerboard, normalization):
    """A new item carrying item 3's features gets item 3's visual row, no latent part, and β'·f."""
    features = block_features()
    model = VBPR(factors=4, visual_factors=3, epochs=3, feature_normalization=normalization)
    model.fit(checkerboard, item_features={"image": features})
    before = model.score(np.arange(60))
    new = model.add_items({"image": features[[3, 30]]})
    assert new.tolist() == [40, 41] and model.n_items_ == 42
    torch.testing.assert_close(model.item_visual_embeddings_[40], model.item_visual_embeddings_[3])
    assert not model.item_factors_[40:].any()
    after = model.score(np.arange(60))
    torch.testing.assert_close(after[:, :40], before)
    fused = fuse_features({"image": features}, ("image",), normalization)
    expected = model.user_visual_factors_ @ model.item_visual_embeddings_[3] + fused[3] @ model.feature_bias_weights_
    torch.testing.assert_close(after[:, 40], expected)
    with pytest.raises(ValueError, match=r"needs the feature arrays \['image'\]"):
        model.add_items({"text": features[:1]})


def test_item_bias_false_is_mmrecs_vbpr_without_the_papers_biases(checkerboard):
    features = {"image": block_features()}
    with_bias = VBPR(feature_names=("image",), epochs=3, seed=0).fit(checkerboard, item_features=features)
    assert with_bias.item_bias_.abs().max() > 0 and with_bias.feature_bias_weights_.abs().max() > 0
    plain = VBPR(feature_names=("image",), epochs=3, seed=0, item_bias=False).fit(checkerboard, item_features=features)
    assert plain.item_bias_.abs().max() == 0 and plain.feature_bias_weights_.abs().max() == 0
    scores = plain.score([0, 1])  # only the two inner products remain
    expected = plain.user_factors_[:2] @ plain.item_factors_.T + plain.user_visual_factors_[:2] @ \
        plain.item_visual_embeddings_.T
    torch.testing.assert_close(scores, expected)
    assert not torch.equal(scores, with_bias.score([0, 1]))
