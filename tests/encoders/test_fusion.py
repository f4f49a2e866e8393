"""Fusion rules and LearnedFusion, checked against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.encoders.fusion import LearnedFusion, fuse

TEXT = np.array([[1.0, 0.0], [2.0, 2.0], [9.0, 9.0]], dtype=np.float32)
IMAGE = np.array([[3.0, 4.0], [np.nan, np.nan], [0.0, 6.0]], dtype=np.float32)
TEXT_MASK = np.array([True, True, False])
IMAGE_MASK = np.array([True, False, False])


def test_concat_zeroes_missing_blocks_and_scales_by_weight():
    fused, mask = fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK}, "concat")
    assert fused.dtype == np.float32 and fused.shape == (3, 4)
    np.testing.assert_array_equal(fused, [[1, 0, 3, 4], [2, 2, 0, 0], [0, 0, 0, 0]])
    assert mask.tolist() == [True, True, False]
    scaled, _ = fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK}, "concat",
                     weights={"text": 2.0, "image": 0.5})
    np.testing.assert_array_equal(scaled[0], [2, 0, 1.5, 2])


def test_mean_averages_only_present_modalities():
    fused, mask = fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK}, "mean")
    # row 0: (1,0) and (3,4) -> (2,2); row 1: text only (the NaN image row is ignored); row 2: nothing
    np.testing.assert_array_equal(fused, [[2, 2], [2, 2], [0, 0]])
    assert mask.tolist() == [True, True, False]


def test_weighted_renormalises_over_present_modalities():
    fused, mask = fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK}, "weighted",
                       weights={"text": 3.0, "image": 1.0})
    # row 0: 0.75*(1,0) + 0.25*(3,4) = (1.5, 1.0); row 1: text alone, weight renormalised to 1
    np.testing.assert_allclose(fused, [[1.5, 1.0], [2, 2], [0, 0]])
    assert mask.tolist() == [True, True, False]
    _, zero_weight_mask = fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK},
                               "weighted", weights={"text": 0.0, "image": 1.0})
    assert zero_weight_mask.tolist() == [True, False, False]  # row 1 has only a zero-weight modality


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "max"}, "unknown fusion method"),
        ({"method": "weighted"}, "needs weights"),
        ({"method": "mean", "weights": {"text": 1.0}}, "weights name"),
        ({"method": "weighted", "weights": {"text": -1.0, "image": 1.0}}, "non-negative"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK}, **kwargs)


def test_shape_mismatches_name_the_modality():
    with pytest.raises(ValueError, match="equal dimensions"):
        fuse({"text": TEXT, "image": np.zeros((3, 5))}, {"text": TEXT_MASK, "image": IMAGE_MASK}, "mean")
    with pytest.raises(ValueError, match="different item counts"):
        fuse({"text": TEXT, "image": np.zeros((2, 2))}, {"text": TEXT_MASK, "image": IMAGE_MASK[:2]})
    with pytest.raises(ValueError, match=r"masks\['image'\]"):
        fuse({"text": TEXT, "image": IMAGE}, {"text": TEXT_MASK, "image": IMAGE_MASK[:2]})


def _identity_fusion(logits):
    fusion = LearnedFusion({"text": 2, "image": 2}, output_dim=2)
    with torch.no_grad():
        for layer in fusion.projections.values():
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
        fusion.modality_logits.copy_(torch.tensor(logits))
    return fusion


def test_learned_fusion_mixes_with_softmax_weights_over_present_modalities():
    fusion = _identity_fusion([np.log(3.0), 0.0])  # softmax -> text 0.75, image 0.25
    assert fusion.modality_weights() == pytest.approx({"text": 0.75, "image": 0.25})
    features = {"text": torch.tensor(TEXT), "image": torch.tensor(IMAGE)}
    masks = {"text": torch.tensor(TEXT_MASK), "image": torch.tensor(IMAGE_MASK)}
    out = fusion(features, masks)
    torch.testing.assert_close(out, torch.tensor([[1.5, 1.0], [2.0, 2.0], [0.0, 0.0]]))
    all_present = fusion({"text": torch.tensor(TEXT[:1]), "image": torch.tensor(IMAGE[:1])})
    torch.testing.assert_close(all_present, torch.tensor([[1.5, 1.0]]))


def test_learned_fusion_trains_its_weights_and_projections():
    torch.manual_seed(0)
    fusion = LearnedFusion({"text": 3, "image": 5}, output_dim=4)
    features = {"text": torch.randn(8, 3), "image": torch.randn(8, 5)}
    masks = {"text": torch.ones(8, dtype=torch.bool), "image": torch.tensor([True, False] * 4)}
    fusion(features, masks).sum().backward()
    assert fusion.modality_logits.grad is not None and fusion.modality_logits.grad.abs().sum() > 0
    assert all(layer.weight.grad is not None for layer in fusion.projections.values())
    with pytest.raises(KeyError, match="missing"):
        fusion({"text": features["text"]})
