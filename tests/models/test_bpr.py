"""BPR-specific checks: the hand-written SGD step equals autograd's gradient step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.models import BPR
from prismrec.models.bpr import bpr_sgd_step


def test_sgd_step_matches_autograd_including_repeated_rows():
    generator = torch.Generator().manual_seed(3)
    user_factors, item_factors = torch.randn(3, 4, generator=generator), torch.randn(5, 4, generator=generator)
    item_bias = torch.randn(5, generator=generator)
    # user 0 and item 1 appear twice, item 1 is both a positive and a negative: updates must add up
    users, positives, negatives = torch.tensor([0, 0, 2]), torch.tensor([1, 3, 1]), torch.tensor([4, 1, 0])
    learning_rate, regularization = 0.1, 0.05

    params = [p.clone().requires_grad_(True) for p in (user_factors, item_factors, item_bias)]
    u, i, j = params[0][users], params[1][positives], params[1][negatives]
    bi, bj = params[2][positives], params[2][negatives]
    x = (u * (i - j)).sum(1) + bi - bj
    penalty = sum(t.pow(2).sum() for t in (u, i, j, bi, bj))
    objective = -torch.nn.functional.logsigmoid(x).sum() + 0.5 * regularization * penalty
    objective.backward()
    expected = [(p - learning_rate * p.grad).detach() for p in params]

    loss = bpr_sgd_step(user_factors, item_factors, item_bias, users, positives, negatives,
                        learning_rate, regularization)
    assert loss == pytest.approx(torch.nn.functional.softplus(-x).sum().item(), rel=1e-6)
    for got, want in zip((user_factors, item_factors, item_bias), expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_training_lowers_the_loss_and_keeps_untouched_rows(checkerboard):
    model = BPR(factors=8, epochs=15, learning_rate=0.05, seed=0).fit(checkerboard)
    losses = model.loss_history_
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    assert model.best_epoch_ == 14  # no validation data: the last epoch is kept
    assert model.user_factors_.shape == (60, 8) and model.item_bias_.shape == (40,)


def test_user_without_interactions_gets_the_item_bias_ranking(checkerboard):
    keep = checkerboard.user_index != 0  # user 0 has no training data: its factors stay at the init
    model = BPR(factors=8, epochs=5, init_std=0.0, seed=0).fit(checkerboard.subset(keep))
    assert torch.equal(model.score([0])[0], model.item_bias_)
    assert np.isfinite(model.score(np.arange(60)).numpy()).all()
