"""Shared state of sequential recommenders (SASRec, the foundation model): user histories.

Leave-one-out as SASRec and P5 evaluate it: while training, a user's history is the
training part, so validation predicts the validation item from it; when ``fit`` ends the
history becomes train + valid, so the test item is predicted from a sequence that
includes the validation item. :meth:`SequentialHistory.use_history` sets it explicitly.
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.data.interactions import Interactions
from prismrec.data.sequences import user_sequences


class SequentialHistory:
    """Mixin: ``history_items_``/``history_offsets_`` (CSR-like, oldest first) and look-ups.

    Example:
        >>> model.use_history(split.train)  # doctest: +SKIP
        >>> model.history_of(3)  # doctest: +SKIP
        array([12, 7, 40])
    """

    def use_history(self, *parts: Interactions) -> None:
        """Score from the time-ordered union of ``parts`` (e.g. ``train, valid`` for the test)."""
        sequences = user_sequences(*parts)
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        self.history_offsets_ = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]))
        flat = np.concatenate(sequences) if len(sequences) else np.empty(0, dtype=np.int64)
        self.history_items_ = torch.from_numpy(flat.astype(np.int64))

    def history_of(self, user: int, max_length: int | None = None) -> np.ndarray:
        """The user's item indices, oldest first (the last ``max_length`` when given)."""
        start, end = int(self.history_offsets_[user]), int(self.history_offsets_[user + 1])
        if max_length is not None:
            start = max(start, end - max_length)
        return self.history_items_[start:end].numpy()

    def padded_histories(self, user_ids, max_length: int) -> torch.Tensor:
        """``[len(user_ids), max_length]`` item indices, left-padded with -1, most recent last."""
        out = torch.full((len(user_ids), max_length), -1, dtype=torch.long)
        for row, user in enumerate(np.asarray(user_ids, dtype=np.int64)):
            history = self.history_of(int(user), max_length)
            if len(history):
                out[row, max_length - len(history):] = torch.from_numpy(history)
        return out


def flatten_state(module: torch.nn.Module) -> tuple[torch.Tensor, list]:
    """All parameters and buffers of ``module`` as one float32 vector plus ``[name, shape]`` layout.

    Tied tensors (the same storage under two names, like T5's shared embedding) appear once.
    This is how a network becomes a ``_``-suffixed tensor that the base ``save`` writes.

    Example:
        >>> vector, layout = flatten_state(torch.nn.Linear(2, 1))
        >>> vector.shape, layout
        (torch.Size([3]), [['weight', [1, 2]], ['bias', [1]]])
    """
    seen, parts, layout = set(), [], []
    for name, tensor in module.state_dict(keep_vars=True).items():
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        parts.append(tensor.detach().reshape(-1).float().cpu())
        layout.append([name, list(tensor.shape)])
    return torch.cat(parts) if parts else torch.empty(0), layout


def unflatten_state(module: torch.nn.Module, vector: torch.Tensor, layout: list) -> None:
    """Load a :func:`flatten_state` vector back into ``module`` (tied names are filled by their twin)."""
    state, offset = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape)) if shape else 1
        state[name] = vector[offset:offset + size].reshape(shape)
        offset += size
    if offset != len(vector):
        raise ValueError(f"saved network weights have {len(vector)} values, the layout expects {offset}")
    missing, unexpected = module.load_state_dict(state, strict=False)
    tied = {name for name, _ in module.state_dict(keep_vars=True).items()} - set(state)
    if unexpected or set(missing) - tied:
        raise ValueError(f"saved network does not fit the model: missing {sorted(set(missing) - tied)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
