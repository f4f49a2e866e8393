"""Shared training helpers: early stopping on a validation metric, BPR triplet sampling,
batch sizes that fit the data.

Epochs are numbered from 1 everywhere a person sees them: logs, ``best_epoch_`` and
``validation_history_``.
"""
from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np
import torch

from prismrec.data.interactions import Interactions

#: an epoch takes at least this many optimiser steps unless the user sets the batch explicitly
MIN_STEPS_PER_EPOCH = 10


class SettingNotice(UserWarning):
    """A hyperparameter was adjusted to fit the data (for example a batch capped on a small data set)."""


def fitted_batch_size(model, batch_size: int, n_samples: int, *, min_steps: int = MIN_STEPS_PER_EPOCH) -> int:
    """``batch_size`` capped so that an epoch over ``n_samples`` takes at least ``min_steps`` steps.

    A default batch of 8,192 on a 6,000-interaction training set would take one step per
    epoch and leave the model under-trained; the cap is reported with a :class:`SettingNotice`.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     fitted_batch_size(None, 8192, 6000)
        600
        >>> fitted_batch_size(None, 8192, 500_000)
        8192
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cap = max(1, math.ceil(n_samples / min_steps))
    if batch_size <= cap:
        return batch_size
    name = type(model).__name__ if model is not None else "model"
    warnings.warn(f"{name}: batch_size {batch_size} capped at {cap} so that an epoch over {n_samples} training "
                  f"interactions takes at least {min_steps} steps", SettingNotice, stacklevel=2)
    return cap


class EarlyStopping:
    """Track a validation metric (computed by the shared :class:`Evaluator`) and keep the best state.

    The model's learned attributes (names ending in ``_`` holding tensors/arrays) are
    snapshotted when the metric improves and restored by :meth:`restore_best`.

    Example:
        >>> stopper = EarlyStopping(model, train, valid, metric="ndcg@20", patience=3)  # doctest: +SKIP
        >>> for epoch in range(epochs):  # doctest: +SKIP
        ...     train_one_epoch(); model._publish()
        ...     if stopper.step(epoch): break
        >>> stopper.restore_best()  # doctest: +SKIP
    """

    def __init__(self, model, train: Interactions, valid: Interactions | None, *, metric: str = "ndcg@20",
                 patience: int = 5, every: int = 1) -> None:
        from prismrec.evaluation.evaluator import Evaluator

        self.model, self.train, self.valid = model, train, valid
        self.metric, self.patience, self.every = metric, patience, max(1, every)
        name, _, k = metric.partition("@")
        if not k.isdigit():
            raise ValueError(f"early-stopping metric must look like 'ndcg@20', got {metric!r}")
        candidates = getattr(model, "_valid_candidates", None)
        n_rankable = train.n_items if candidates is None else len(candidates)
        if self.active and int(k) > n_rankable:
            where = "catalogue has only" if candidates is None else "validation ranks only the"
            raise ValueError(
                f"{type(model).__name__}: early stopping asked for {metric!r} (early_stopping_metric), but the "
                f"{where} {n_rankable} items; choose a cut-off of at most {n_rankable}, e.g. "
                f"early_stopping_metric: {name}@{min(10, n_rankable)}")
        try:
            self.evaluator = Evaluator(ks=(int(k),), metrics=(name,))
        except KeyError as error:
            raise ValueError(f"{type(model).__name__}: early_stopping_metric {metric!r}: {error.args[0]}") from None
        self.best_value, self.best_epoch, self.history = -np.inf, -1, []
        self._best_state: dict | None = None
        self._bad_checks = 0
        self.last_epoch = -1

    @property
    def active(self) -> bool:
        return self.valid is not None and len(self.valid) > 0

    def step(self, epoch: int) -> bool:
        """Evaluate after ``epoch`` (every ``every`` epochs); return True when training should stop."""
        self.last_epoch = epoch
        if not self.active or (epoch + 1) % self.every:
            return False
        candidates = getattr(self.model, "_valid_candidates", None)
        value = self.evaluator.evaluate(self.model, self.valid, exclude=self.train, candidate_items=candidates,
                                        candidates_label="valid cold items")[self.metric]
        self.history.append((epoch, value))
        if value > self.best_value:
            self.best_value, self.best_epoch, self._bad_checks = value, epoch, 0
            self._best_state = _snapshot(self.model)
            return False
        self._bad_checks += 1
        return self._bad_checks >= self.patience

    def restore_best(self) -> None:
        if self._best_state is not None:
            for name, value in self._best_state.items():
                setattr(self.model, name, value)
        # without validation (or before the first check) the final state is the one kept
        # epochs count from 1, as the logs do
        self.model.best_epoch_ = int(self.best_epoch if self._best_state is not None else self.last_epoch) + 1
        self.model.validation_history_ = [[int(e) + 1, float(v)] for e, v in self.history]


def train_epochs(model, train: Interactions, valid: Interactions | None, run_epoch, *, epochs: int,
                 metric: str, patience: int, every: int, progress: bool = False) -> None:
    """Run ``run_epoch(epoch) -> loss`` up to ``epochs`` times with early stopping on ``valid``.

    Epoch logs go to stderr (``progress=True``), so that stdout holds only results.
    ``run_epoch`` trains one epoch and publishes the model's scoring state (attributes
    ending in ``_``); the best published state is restored at the end, and the model gets
    ``best_epoch_``, ``validation_history_``, ``loss_history_`` and ``epoch_seconds_`` (wall
    seconds of each ``run_epoch``, validation excluded).

    Example:
        >>> train_epochs(model, train, valid, run_one_epoch, epochs=20, metric="ndcg@20",
        ...              patience=3, every=1)  # doctest: +SKIP
    """
    stopper = EarlyStopping(model, train, valid, metric=metric, patience=patience, every=every)
    losses, seconds = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        losses.append(float(run_epoch(epoch)))
        seconds.append(round(time.perf_counter() - start, 4))
        stop = stopper.step(epoch)
        if progress:
            evaluated = bool(stopper.history) and stopper.history[-1][0] == epoch
            checked = f", {metric}={stopper.history[-1][1]:.4f}" if evaluated else ""
            print(f"{type(model).__name__} epoch {epoch + 1}/{epochs}: loss={losses[-1]:.4f}{checked}",
                  file=sys.stderr, flush=True)
        if stop:
            break
    stopper.restore_best()
    model.loss_history_, model.epoch_seconds_ = losses, seconds


def minibatch_epoch(optimizer, batch_loss, users, positives, negatives, batch_size: int) -> float:
    """One pass of ``batch_loss(users, positives, negatives) -> loss`` over mini-batches with
    autograd and ``optimizer``; returns the mean loss per triplet.

    Example:
        >>> loss = minibatch_epoch(optimizer, model_loss, users, positives, negatives, 8192)  # doctest: +SKIP
    """
    total = 0.0
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        optimizer.zero_grad()
        loss = batch_loss(users[batch], positives[batch], negatives[batch])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(users[batch])
    return total / max(len(users), 1)


def _snapshot(model) -> dict:
    state = {}
    for name, value in vars(model).items():
        if name.endswith("_") and not name.startswith("_"):
            if isinstance(value, torch.Tensor):
                state[name] = value.detach().clone()
            elif isinstance(value, np.ndarray):
                state[name] = value.copy()
    return state


class TripletSampler:
    """Uniform ``(user, positive, negative)`` triplets for BPR-style losses, vectorised.

    Positives are drawn uniformly over training interactions; negatives are redrawn in
    bulk until none is one of the user's training items.

    Example:
        >>> sampler = TripletSampler(train, seed=0)  # doctest: +SKIP
        >>> users, positives, negatives = sampler.sample(len(train))  # doctest: +SKIP
    """

    #: largest seen-pair bitmap (bytes) kept for O(1) look-ups; bigger data uses binary search
    max_bitmap_bytes = 256 * 2**20

    def __init__(self, train: Interactions, seed: int = 0) -> None:
        self.train = train
        self.generator = np.random.default_rng(seed)
        matrix = train.matrix
        row_of_entry = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        self._keys = row_of_entry * train.n_items + matrix.indices  # sorted: CSR rows, sorted indices
        self._users, self._items = train.user_index, train.item_index
        self._bitmap = _seen_bitmap(self._keys, train.n_users * train.n_items, self.max_bitmap_bytes)

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """True where ``(users[k], items[k])`` is a training interaction."""
        keys = users.astype(np.int64) * self.train.n_items + items
        if self._bitmap is not None:
            return (self._bitmap[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1 == 1
        if len(self._keys) == 0:
            return np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[pos] == keys

    def sample(self, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.generator.integers(0, len(self._users), size=n_samples)
        users, positives = self._users[rows], self._items[rows]
        negatives = self.generator.integers(0, self.train.n_items, size=n_samples)
        for _ in range(50):
            clash = self.is_seen(users, negatives)
            if not clash.any():
                break
            negatives[clash] = self.generator.integers(0, self.train.n_items, size=int(clash.sum()))
        return users, positives, negatives


def _seen_bitmap(sorted_keys: np.ndarray, n_pairs: int, max_bytes: int) -> np.ndarray | None:
    """One bit per (user, item) pair, set for ``sorted_keys`` (unique, ascending); None if too big."""
    n_bytes = (n_pairs + 7) // 8
    if n_bytes > max_bytes:
        return None
    bitmap = np.zeros(max(n_bytes, 1), dtype=np.uint8)
    if len(sorted_keys):
        byte_of_key = sorted_keys >> 3
        starts = np.flatnonzero(np.r_[True, byte_of_key[1:] != byte_of_key[:-1]])
        bits = np.left_shift(1, (sorted_keys & 7)).astype(np.uint8)
        # keys are unique, so the bits within one byte are distinct and their sum is their OR
        bitmap[byte_of_key[starts]] = np.add.reduceat(bits, starts).astype(np.uint8)
    return bitmap


class Adam:
    """Plain dense Adam (Kingma & Ba 2015) on a list of tensors with ``.grad``.

    The same update as ``torch.optim.Adam`` without weight decay, written out so that
    training does not import ``torch._dynamo`` (seconds at start-up) and stays bit-for-bit
    reproducible on CPU.

    Example:
        >>> import torch
        >>> weight = torch.nn.Parameter(torch.tensor([1.0]))
        >>> optimizer = Adam([weight], learning_rate=0.1)
        >>> (weight ** 2).sum().backward(); optimizer.step()
        >>> round(weight.item(), 4)
        0.9
    """

    def __init__(self, params, *, learning_rate: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        self.learning_rate, self.betas, self.eps = learning_rate, betas, eps
        self.steps = 0
        self._first = [torch.zeros_like(p) for p in self.params]
        self._second = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.learning_rate / (1 - beta1**self.steps)
        bias_correction2 = (1 - beta2**self.steps) ** 0.5
        for param, first, second in zip(self.params, self._first, self._second):
            if param.grad is None:
                continue
            first.mul_(beta1).add_(param.grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
            denominator = (second.sqrt() / bias_correction2).add_(self.eps)
            param.addcdiv_(first, denominator, value=-step_size)
