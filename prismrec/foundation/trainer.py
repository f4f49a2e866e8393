"""Training data and the epoch loop of the foundation model, with per-epoch checkpoints.

Sequential examples follow P5/TIGER: every position ``t >= 1`` of a user's training
sequence is a target, its (at most ``max_history``) predecessors the history, phrased
with a random training template. Checkpoints hold the network, the optimiser, the
random state and the early-stopping record, written atomically after every epoch, so a
killed run resumes at the next epoch.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from prismrec.foundation.prompts import render, templates


def sequential_examples(sequences: list[np.ndarray], max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """``(user, position)`` pairs: predict ``sequences[user][position]`` from what precedes it.

    Example:
        >>> users, positions = sequential_examples([np.array([4, 5, 6]), np.array([7])], 20)
        >>> users.tolist(), positions.tolist()
        ([0, 0], [1, 2])
    """
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    users = np.repeat(np.arange(len(sequences)), np.maximum(lengths - 1, 0))
    starts = np.cumsum(np.maximum(lengths - 1, 0)) - np.maximum(lengths - 1, 0)
    positions = np.arange(len(users)) - np.repeat(starts, np.maximum(lengths - 1, 0)) + 1
    return users, positions


def sample_positions(users: np.ndarray, positions: np.ndarray, per_user: int | None,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``per_user`` random examples of each user (all when ``None``), in their original order.

    Long sequences (MovieLens users rate ~100 movies) then cost a bounded number of steps
    per epoch; every epoch draws afresh, so over epochs all positions are seen.

    Example:
        >>> users, positions = sample_positions(np.array([0, 0, 0, 1]), np.array([1, 2, 3, 1]), 2,
        ...                                     np.random.default_rng(0))
        >>> np.bincount(users).tolist()
        [2, 1]
    """
    if per_user is None or len(users) == 0:
        return users, positions
    if per_user < 1:
        raise ValueError(f"positions_per_user must be positive or None, got {per_user}")
    keys = rng.random(len(users))
    order = np.lexsort((keys, users))  # by user, random within a user
    starts = np.searchsorted(users[order], users[order], side="left")
    rank = np.arange(len(order)) - starts
    keep = np.sort(order[rank < per_user])
    return users[keep], positions[keep]


def sequential_source(encoder, template_text: str, raw_user: str, history: np.ndarray):
    """Encode one sequential prompt, truncating the oldest history items when too long."""
    def rendered(kept):
        return render(template_text, user=raw_user, history=kept)

    return encoder.fitted_source(rendered, history)


def example_batch(encoder, sequences, raw_users, users, positions, max_history: int, rng, *,
                  direct_share: float = 0.0, direct_candidates: int = 20) -> dict:
    """A padded training batch for the given ``(user, position)`` examples.

    A ``direct_share`` of them is phrased as direct prompts: the target among
    ``direct_candidates - 1`` random items (no history, as in VIP5).
    """
    from prismrec.foundation.direct import direct_templates, training_candidates

    options, direct_options = templates("sequential"), direct_templates()
    n_items = len(encoder.item_tokens)
    sources, targets = [], []
    for user, position in zip(users, positions):
        sequence = sequences[user]
        target = int(sequence[position])
        if direct_share > 0 and rng.random() < direct_share:
            template = direct_options[int(rng.integers(len(direct_options)))]
            candidates = training_candidates(target, n_items, direct_candidates, rng)
            sources.append(encoder.source(render(template.source, user=raw_users[user], candidates=candidates)))
        else:
            history = sequence[max(0, position - max_history):position]
            template = options[int(rng.integers(len(options)))]
            sources.append(sequential_source(encoder, template.source, raw_users[user], history))
        targets.append(encoder.item_target(target))
    return encoder.collate(sources, targets)


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                            *, pool: int = 50) -> list[np.ndarray]:
    """Random batches of examples with similar prompt lengths (less padding, same examples).

    Examples are shuffled, cut into pools of ``pool`` batches, sorted by length inside
    each pool, batched, and the batches shuffled.

    Example:
        >>> batches = length_bucketed_batches(np.array([1, 9, 2, 8]), 2, np.random.default_rng(0))
        >>> sorted(sorted(b.tolist()) for b in batches)
        [[0, 2], [1, 3]]
    """
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start:start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def train_one_epoch(network, encoder, optimizer, sequences, raw_users, *, batch_size: int, max_history: int,
                    rng: np.random.Generator, device, progress: bool = False, description: str = "",
                    direct_share: float = 0.0, direct_candidates: int = 20,
                    positions_per_user: int | None = None) -> float:
    """One pass over all sequential examples (at most ``positions_per_user`` random ones per
    user when given) in random order; returns the mean loss."""
    users, positions = sample_positions(*sequential_examples(sequences, max_history), positions_per_user, rng)
    batches = length_bucketed_batches(np.minimum(positions, max_history), batch_size, rng)
    network.train()
    total, seen = 0.0, 0
    bar = _progress(batches, description) if progress else None
    for rows in batches:
        batch = example_batch(encoder, sequences, raw_users, users[rows], positions[rows], max_history, rng,
                              direct_share=direct_share, direct_candidates=direct_candidates)
        batch = {key: value.to(device) for key, value in batch.items()}
        optimizer.zero_grad()
        loss = network.loss(batch)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(rows)
        seen += len(rows)
        if bar is not None:
            bar.update(1, loss=total / seen)
    if bar is not None:
        bar.close()
    encoder.warn_truncated()
    network.eval()
    return total / max(seen, 1)


class _progress:
    """A small progress line on stderr (rich is used by the CLI; this stays dependency-light)."""

    def __init__(self, steps, description: str) -> None:
        self.total, self.done, self.description = len(steps), 0, description
        self.started = self.last = time.perf_counter()

    def update(self, n: int, *, loss: float) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last > 2.0 or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / max(rate, 1e-9)
            print(f"\r{self.description} {self.done}/{self.total} steps, loss {loss:.4f}, "
                  f"{rate:.1f} steps/s, {left:.0f} s left", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)


def save_checkpoint(path, *, network, optimizer, epoch: int, stopper, rng, fingerprints: dict) -> None:
    """Write a resumable checkpoint atomically (``torch.save`` of plain tensors and numbers)."""
    from prismrec.io import atomic_path

    state = {
        "epoch": epoch, "network": network.state_dict(), "optimizer": optimizer.state_dict(),
        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "fingerprints": fingerprints,
        "stopper": {"best_value": stopper.best_value, "best_epoch": stopper.best_epoch, "history": stopper.history,
                    "bad_checks": stopper._bad_checks, "best_state": stopper._best_state, "losses": stopper.losses},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, *, network, optimizer, stopper, rng, fingerprints: dict) -> int:
    """Restore a checkpoint; returns the next epoch. Refuses one made with another tokenizer or ids."""
    state = torch.load(path, weights_only=False)
    for key, expected in fingerprints.items():
        found = state["fingerprints"].get(key)
        if found != expected:
            raise ValueError(f"{path}: checkpoint was made with another {key} ({found}, this run has {expected}); "
                             f"refusing to resume from it. Delete it or use the original settings")
    network.load_state_dict(state["network"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    record = state["stopper"]
    stopper.best_value, stopper.best_epoch, stopper.history = record["best_value"], record["best_epoch"], record["history"]
    stopper._bad_checks, stopper._best_state, stopper.losses = record["bad_checks"], record["best_state"], record["losses"]
    return int(state["epoch"]) + 1
