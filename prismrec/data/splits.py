"""Leak-free, seeded splits of :class:`Interactions` into train / valid / test.

Every split returns a :class:`Split` whose three parts share the id maps of the
input, and guarantees that no (user, item) pair of valid or test is in train.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prismrec.data.interactions import Interactions


@dataclass(eq=False)
class Split:
    """Three disjoint parts of one data set."""

    train: Interactions
    valid: Interactions
    test: Interactions
    strategy: str = ""
    cold_items: np.ndarray | None = None
    #: cold-start item splits: the held-out items whose interactions form ``valid``
    valid_cold_items: np.ndarray | None = None

    def ranking_candidates(self, part: str, cold_start_candidates: str = "cold") -> tuple[np.ndarray | None, str]:
        """Items to rank when evaluating ``part`` (``"valid"`` or ``"test"``) and their label.

        On a cold-start item split with ``cold_start_candidates="cold"`` these are the part's
        cold items; otherwise ``None`` (rank every item).
        """
        items = self.cold_items if part == "test" else self.valid_cold_items
        if items is None or cold_start_candidates != "cold":
            return None, "candidate items"
        return items, f"cold {part} items"

    def check_disjoint(self) -> None:
        """Raise ``AssertionError`` if a valid/test pair also appears in train."""
        train_keys = _pair_keys(self.train)
        for name in ("valid", "test"):
            leaked = int(np.isin(_pair_keys(getattr(self, name)), train_keys).sum())
            if leaked:
                raise AssertionError(f"{leaked} {name} interactions also appear in train")

    def to_csv(self, folder: str | Path) -> None:
        """Write ``train.csv``, ``valid.csv``, ``test.csv`` with raw ids (atomically)."""
        from prismrec.io import atomic_write_frame

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("train", "valid", "test"):
            atomic_write_frame(getattr(self, name).to_frame(raw=True), folder / f"{name}.csv")

    def __repr__(self) -> str:
        return f"Split({self.strategy}: train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)})"


def _from_labels(data: Interactions, labels: np.ndarray, strategy: str) -> Split:
    """labels: 0 train, 1 valid, 2 test (per interaction)."""
    split = Split(data.subset(labels == 0), data.subset(labels == 1), data.subset(labels == 2), strategy)
    # repeated (user, item) rows (data that was not deduplicated) must never leak into train
    return _drop_train_pairs(split)


def _sort_keys(data: Interactions, rng: np.random.Generator | None) -> np.ndarray:
    """Order interactions by user, then by time (or randomly when ``rng`` is given)."""
    if rng is not None:
        secondary = rng.random(len(data))
    elif data.timestamps is not None:
        secondary = data.timestamps
    else:
        raise ValueError(f"{data.source}: a temporal split needs timestamps, and this data set has none")
    # stable tiebreak on the original row order keeps the split deterministic
    return np.lexsort((np.arange(len(data)), secondary, data.user_index))


def _per_user_positions(data: Interactions, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows in ``order`` (grouped by user): position within the user and the user's count."""
    users = data.user_index[order]
    counts = np.bincount(users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[users]
    return position, counts[users]


def per_user_ratio(data: Interactions, ratios=(0.8, 0.1, 0.1), *, seed: int = 0, temporal: bool = False) -> Split:
    """Split each user's interactions by ratio: randomly (MMRec's 8:1:1) or by time.

    Each user with at least 3 interactions keeps one or more in train; rounding follows
    ``floor`` for valid and test counts with at least one of each when the user has >= 3.

    Example:
        >>> split = per_user_ratio(data, (0.8, 0.1, 0.1), seed=42)  # doctest: +SKIP
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.shape != (3,) or np.any(ratios < 0) or not np.isclose(ratios.sum(), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers that sum to 1, got {ratios.tolist()}")
    rng = None if temporal else np.random.default_rng(seed)
    order = _sort_keys(data, rng)
    position, count = _per_user_positions(data, order)
    n_test = np.floor(count * ratios[2]).astype(np.int64)
    n_valid = np.floor(count * ratios[1]).astype(np.int64)
    enough = count >= 3
    n_test = np.where(enough & (ratios[2] > 0), np.maximum(n_test, 1), np.where(enough, n_test, 0))
    n_valid = np.where(enough & (ratios[1] > 0), np.maximum(n_valid, 1), np.where(enough, n_valid, 0))
    labels_sorted = np.zeros(len(order), dtype=np.int8)
    labels_sorted[position >= count - n_test - n_valid] = 1
    labels_sorted[position >= count - n_test] = 2
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return _from_labels(data, labels, "temporal_per_user" if temporal else "random_per_user")


def leave_one_out(data: Interactions) -> Split:
    """Last interaction of each user is test, the second-last is valid (needs >= 3).

    Users with fewer than 3 interactions stay entirely in train. Ties in time keep
    the original row order, so sequence files (no timestamps) use their line order.
    """
    if data.timestamps is None:
        order = np.lexsort((np.arange(len(data)), data.user_index))
    else:
        order = _sort_keys(data, None)
    position, count = _per_user_positions(data, order)
    labels_sorted = np.zeros(len(order), dtype=np.int8)
    enough = count >= 3
    labels_sorted[enough & (position == count - 2)] = 1
    labels_sorted[enough & (position == count - 1)] = 2
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return _from_labels(data, labels, "leave_one_out")


def global_temporal(data: Interactions, ratios=(0.8, 0.1, 0.1)) -> Split:
    """Cut the whole timeline at two time points: the oldest share trains, the newest tests.

    Valid/test rows whose user has no training interaction are kept (they are cold
    users); the evaluator skips users without training history only if asked.
    """
    if data.timestamps is None:
        raise ValueError(f"{data.source}: global_temporal needs timestamps, and this data set has none")
    order = np.lexsort((np.arange(len(data)), data.timestamps))
    n = len(order)
    cut_valid = int(round(n * ratios[0]))
    cut_test = int(round(n * (ratios[0] + ratios[1])))
    labels = np.empty(n, dtype=np.int8)
    labels[order[:cut_valid]] = 0
    labels[order[cut_valid:cut_test]] = 1
    labels[order[cut_test:]] = 2
    # a pair seen in train and again later (re-rating) is dropped from valid/test
    return _from_labels(data, labels, "global_temporal")


def _pair_keys(part: Interactions) -> np.ndarray:
    """One int64 key per (user, item) row."""
    return part.user_index * part.n_items + part.item_index


def _drop_train_pairs(split: Split) -> Split:
    train_keys = _pair_keys(split.train)
    parts = {name: getattr(split, name) for name in ("valid", "test")}
    parts = {name: part.subset(~np.isin(_pair_keys(part), train_keys)) for name, part in parts.items()}
    return Split(split.train, parts["valid"], parts["test"], split.strategy, split.cold_items, split.valid_cold_items)


def cold_start_items(data: Interactions, *, cold_fraction: float = 0.2, valid_share: float = 0.5, seed: int = 0) -> Split:
    """Hold out ``cold_fraction`` of the items: train never sees them.

    The held-out items are split into valid-cold and test-cold items; every interaction
    with a valid-cold item goes to valid, with a test-cold item to test. ``Split.cold_items``
    holds the test-cold item indices (score only those for cold-start evaluation) and
    ``Split.valid_cold_items`` the valid-cold ones (early stopping ranks among those).
    """
    if not 0 < cold_fraction < 1:
        raise ValueError(f"cold_fraction must be in (0, 1), got {cold_fraction}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(data.n_items)
    n_cold = max(2, int(round(data.n_items * cold_fraction)))
    n_valid_cold = int(round(n_cold * valid_share))
    valid_items, test_items = perm[:n_valid_cold], perm[n_valid_cold:n_cold]
    labels = np.zeros(len(data), dtype=np.int8)
    labels[np.isin(data.item_index, valid_items)] = 1
    labels[np.isin(data.item_index, test_items)] = 2
    split = _from_labels(data, labels, "cold_start_items")
    split.cold_items = np.sort(test_items)
    split.valid_cold_items = np.sort(valid_items)
    return split


SPLITTERS = {
    "random_per_user": lambda d, **kw: per_user_ratio(d, temporal=False, **kw),
    "temporal_per_user": lambda d, **kw: per_user_ratio(d, temporal=True, **kw),
    "global_temporal": global_temporal,
    "leave_one_out": leave_one_out,
    "cold_start_items": cold_start_items,
}


def subsample_train(split: Split, fraction: float, *, seed: int = 0) -> Split:
    """Keep ``fraction`` of each user's training interactions (at least one), seeded; valid/test unchanged.

    Draws a sparsity curve: the same test users and items, with less training signal.

    Example:
        >>> sparse = subsample_train(split, 0.25, seed=0)  # doctest: +SKIP
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return split
    train = split.train
    order = np.lexsort((np.random.default_rng(seed).random(len(train)), train.user_index))
    position, count = _per_user_positions(train, order)
    keep_sorted = position < np.maximum(1, np.ceil(count * fraction)).astype(np.int64)
    keep = np.zeros(len(train), dtype=bool)
    keep[order[keep_sorted]] = True
    return Split(train.subset(keep), split.valid, split.test, f"{split.strategy}, train x{fraction:g}",
                 split.cold_items, split.valid_cold_items)


_SPLIT_FUNCTIONS = {"random_per_user": per_user_ratio, "temporal_per_user": per_user_ratio,
                    "global_temporal": global_temporal, "leave_one_out": leave_one_out,
                    "cold_start_items": cold_start_items}


def split_options(strategy: str) -> list[str]:
    """The options a strategy accepts (``seed``, ``ratios``...), read from its function's signature.

    Example:
        >>> split_options("random_per_user")
        ['ratios', 'seed']
    """
    import inspect

    parameters = list(inspect.signature(_SPLIT_FUNCTIONS[strategy]).parameters)[1:]
    return sorted(set(parameters) - {"temporal"})


def make_split(data: Interactions, strategy: str, **options) -> Split:
    """Split by strategy name (one of :data:`SPLITTERS`)."""
    if strategy not in SPLITTERS:
        raise KeyError(f"unknown split strategy {strategy!r}; choose one of {sorted(SPLITTERS)}")
    unknown = sorted(set(options) - set(split_options(strategy)))
    if unknown:
        raise TypeError(f"split strategy {strategy!r} has no option(s) {unknown}; it accepts "
                        f"{split_options(strategy) or 'no options'}")
    return SPLITTERS[strategy](data, **options)
