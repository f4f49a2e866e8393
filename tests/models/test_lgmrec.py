"""LGMRec-specific checks: the hypergraph contrast, one modality, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.models import LGMRec
from prismrec.models.lgmrec import hypergraph_contrast

FAST = {"embedding_size": 16, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_hypergraph_contrast_equals_the_hand_computed_sum():
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    second = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    # rows 0 and 1 of `first` against all of `second`: cosines [1, 0, -1] and [0, 1, 0]; temperature 1
    expected = -np.log(np.e / (np.e + 1 + 1 / np.e)) - np.log(np.e / (1 + np.e + 1))
    assert hypergraph_contrast(first, second, torch.tensor([0, 1]), 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_one_modality_works_and_bad_inputs_raise_clear_errors(checkerboard):
    features = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    model = LGMRec(**{**FAST, "epochs": 2}, feature_names=("image",))
    model.fit(checkerboard, item_features={"image": features})
    assert torch.isfinite(model.score([0, 1])).all()
    with pytest.raises(ValueError, match=r"keep_rate .* must be in \(0, 1\], got 0.0"):
        LGMRec(keep_rate=0.0)
    with pytest.raises(ValueError, match="hyper_num must be at least 1"):
        LGMRec(hyper_num=0)
