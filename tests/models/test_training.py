"""Training helpers: Adam equals torch.optim.Adam, the sampler never returns seen negatives."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.models.training import Adam, TripletSampler


def test_adam_matches_torch_optim_adam():
    generator = torch.Generator().manual_seed(0)
    start, target = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    our_optimizer = Adam([ours], learning_rate=0.05)
    torch_optimizer = torch.optim.Adam([theirs], lr=0.05)
    for _ in range(6):
        for param, optimizer in ((ours, our_optimizer), (theirs, torch_optimizer)):
            optimizer.zero_grad()
            ((param - target) ** 3).abs().sum().backward()
            optimizer.step()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ours, start)


def test_sampler_negatives_are_unseen_and_positives_are_seen(checkerboard):
    dense = checkerboard.matrix.toarray() > 0
    for bitmap_limit in (TripletSampler.max_bitmap_bytes, 0):  # bitmap and binary-search look-ups
        sampler = TripletSampler(checkerboard, seed=1)
        if bitmap_limit == 0:
            sampler._bitmap = None
        users, items = np.divmod(np.arange(60 * 40), 40)
        np.testing.assert_array_equal(sampler.is_seen(users, items), dense.ravel())
        users, positives, negatives = sampler.sample(5000)
        assert dense[users, positives].all() and not dense[users, negatives].any()
        # positives are uniform over interactions: every interaction's user shows up in proportion
        counts = np.bincount(users, minlength=60) / 5000
        np.testing.assert_allclose(counts, checkerboard.user_counts() / len(checkerboard), atol=0.02)


def test_sampler_is_seeded(checkerboard):
    first = TripletSampler(checkerboard, seed=4).sample(100)
    second = TripletSampler(checkerboard, seed=4).sample(100)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_batch_is_capped_so_an_epoch_takes_at_least_ten_steps():
    import warnings as _warnings

    from prismrec.models.training import SettingNotice, fitted_batch_size

    with pytest.warns(SettingNotice, match="capped at 600"):
        assert fitted_batch_size(None, 8192, 6000) == 600
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")  # no notice when the batch already fits
        assert fitted_batch_size(None, 256, 6000) == 256
    with pytest.raises(ValueError, match="at least 1"):
        fitted_batch_size(None, 0, 10)


def test_cold_start_validation_ranks_among_the_valid_cold_items(checkerboard):
    from prismrec.data.splits import cold_start_items
    from prismrec.evaluation import Evaluator
    from prismrec.models import BPR

    split = cold_start_items(checkerboard, cold_fraction=0.4, seed=0)
    model = BPR(factors=4, epochs=3, early_stopping_metric="ndcg@5", patience=5).fit(
        split.train, split.valid, valid_candidates=split.valid_cold_items)
    restricted = Evaluator(ks=(5,), metrics=("ndcg",)).evaluate(
        model, split.valid, exclude=split.train, candidate_items=split.valid_cold_items)
    best = max(value for _, value in model.validation_history_)
    assert restricted["ndcg@5"] == pytest.approx(best)
    with pytest.raises(ValueError, match="validation ranks only the 8 items"):
        BPR(epochs=1, early_stopping_metric="ndcg@20").fit(split.train, split.valid,
                                                           valid_candidates=split.valid_cold_items)
