"""MMGCL-specific checks: the contrast with challenging negatives, edge dropout, blocks, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cold_twin import cold_twin_data
from prismrec.models import MMGCL
from prismrec.models.item_graph import uniform_edge_sample
from prismrec.models.mmgcl import _swap_one_block, contrast_with_hard_negatives

FAST = {"embedding_size": 16, "epochs": 25, "learning_rate": 0.02, "patience": 25}


def test_contrast_adds_one_challenging_negative_per_anchor():
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    hard = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    # row 0 logits: [1, 0, 1/sqrt2]; row 1: [0, 1, -1] (temperature 1)
    c = 2**-0.5
    expected = (-np.log(np.e / (np.e + 1 + np.exp(c))) - np.log(np.e / (1 + np.e + np.exp(-1)))) / 2
    assert contrast_with_hard_negatives(first, second, hard, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_challenging_negative_swaps_exactly_one_block_from_another_row():
    rows = torch.arange(24.0).view(4, 6)  # 3 blocks of 2 columns
    swapped = _swap_one_block(rows, 3, np.random.default_rng(0))
    changed_columns = (swapped != rows).any(0).nonzero().ravel().tolist()
    assert len(changed_columns) == 2 and changed_columns[1] == changed_columns[0] + 1
    assert (swapped != rows).any(1).all()  # every row took the block from a different row


def test_uniform_edge_sample_keeps_a_share_of_existing_edges():
    interactions = sp.random(30, 20, density=0.3, format="csr", random_state=0)
    kept = uniform_edge_sample(interactions, 0.8, np.random.default_rng(1))
    assert kept.nnz == round(interactions.nnz * 0.8)
    assert (kept - kept.multiply(interactions != 0)).nnz == 0


def test_representation_has_an_id_block_and_one_block_per_modality():
    train, features, _, _ = cold_twin_data()
    model = MMGCL(**{**FAST, "epochs": 2}).fit(train, item_features={"image": features, "text": features[::-1].copy()})
    assert model.item_embeddings_.shape == (40, 3 * 16)  # ID block + one block per modality


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match=r"edge_dropout must be in \[0, 1\), got 1.0"):
        MMGCL(edge_dropout=1.0)
