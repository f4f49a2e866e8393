"""Training helpers: Adam equals torch.optim.Adam, the sampler never returns seen negatives."""
from __future__ import annotations

import numpy as np
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
