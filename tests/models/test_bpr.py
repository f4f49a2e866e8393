"""BPR-specific checks: the compiled SGD kernel equals autograd's gradient steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.models import BPR
from prismrec.models.bpr import bpr_sgd_epoch

LEARNING_RATE, REGULARIZATION = 0.1, 0.05


def random_parameters(seed: int = 3):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(4, 3, generator=generator), torch.randn(6, 3, generator=generator),
            torch.randn(6, generator=generator))


def autograd_step(params, users, positives, negatives) -> tuple[list[torch.Tensor], float]:
    """One gradient-descent step on -Σ ln σ(x_uij) + λ/2 Σ ||rows||², through autograd."""
    params = [p.clone().requires_grad_(True) for p in params]
    u, i, j = params[0][users], params[1][positives], params[1][negatives]
    bi, bj = params[2][positives], params[2][negatives]
    x = (u * (i - j)).sum(1) + bi - bj
    loss = -torch.nn.functional.logsigmoid(x).sum()
    (loss + 0.5 * REGULARIZATION * sum(t.pow(2).sum() for t in (u, i, j, bi, bj))).backward()
    return [(p - LEARNING_RATE * p.grad).detach() for p in params], loss.item()


def test_batch_without_repeated_rows_is_one_autograd_step():
    params = random_parameters()
    users, positives, negatives = np.array([0, 1, 3]), np.array([1, 3, 5]), np.array([0, 2, 4])
    expected, expected_loss = autograd_step(params, users, positives, negatives)
    loss = bpr_sgd_epoch(*params, users, positives, negatives, learning_rate=LEARNING_RATE,
                         regularization=REGULARIZATION, batch_size=3)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    for got, want in zip(params, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_batch_size_one_is_sequential_autograd_steps_with_repeated_rows():
    params = random_parameters(seed=5)
    # user 0 and item 1 repeat; item 1 is a positive and later a negative
    users, positives, negatives = np.array([0, 0, 2, 0]), np.array([1, 3, 1, 1]), np.array([4, 1, 0, 5])
    expected = list(random_parameters(seed=5))
    for s in range(4):
        expected, _ = autograd_step(expected, users[s : s + 1], positives[s : s + 1], negatives[s : s + 1])
    bpr_sgd_epoch(*params, users, positives, negatives, learning_rate=LEARNING_RATE,
                  regularization=REGULARIZATION, batch_size=1)
    for got, want in zip(params, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_result_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    users, positives, negatives = rng.integers(0, 4, 500), rng.integers(0, 6, 500), rng.integers(0, 6, 500)
    results, threads = [], torch.get_num_threads()
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            params = random_parameters()
            bpr_sgd_epoch(*params, users, positives, negatives, learning_rate=0.05, regularization=0.01, batch_size=64)
            results.append(params)
    finally:
        torch.set_num_threads(threads)
    for first, second in zip(*results):
        assert torch.equal(first, second)


def test_kernel_rejects_non_float32_tensors():
    user_factors, item_factors, item_bias = random_parameters()
    with pytest.raises(ValueError, match="contiguous float32 CPU tensors"):
        bpr_sgd_epoch(user_factors.double(), item_factors, item_bias, np.array([0]), np.array([1]), np.array([2]),
                      learning_rate=0.1, regularization=0.0)


def test_training_lowers_the_loss(checkerboard):
    model = BPR(factors=8, epochs=15, learning_rate=0.05, seed=0).fit(checkerboard)
    losses = model.loss_history_
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    assert model.best_epoch_ == 15  # no validation data: the last epoch is kept (epochs count from 1)
    assert model.user_factors_.shape == (60, 8) and model.item_bias_.shape == (40,)


def test_user_without_interactions_gets_the_item_bias_ranking(checkerboard):
    keep = checkerboard.user_index != 0  # user 0 has no training data: its factors stay at the init
    model = BPR(factors=8, epochs=5, init_std=0.0, seed=0).fit(checkerboard.subset(keep))
    assert torch.equal(model.score([0])[0], model.item_bias_)
