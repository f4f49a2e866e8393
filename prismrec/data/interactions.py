"""User-item interactions with raw<->index id maps and a CSR matrix.

Every split of one data set shares the same :class:`IdMap` objects, so user 7
means the same person in train, valid and test, and score matrices line up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp


class IdMap:
    """A bijection between raw ids (strings) and contiguous indices ``0..n-1``.

    Example:
        >>> ids = IdMap(["u9", "u3"])
        >>> ids.to_index(["u3"]).tolist(), ids.to_raw([0]).tolist()
        ([1], ['u9'])
    """

    def __init__(self, raw_ids) -> None:
        raw = np.asarray([str(x) for x in raw_ids], dtype=object)
        self._raw = raw
        self._index = {r: i for i, r in enumerate(raw)}
        if len(self._index) != len(raw):
            raise ValueError(f"IdMap: raw ids must be unique, found {len(raw) - len(self._index)} duplicates")

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, raw_id) -> bool:
        return str(raw_id) in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._raw, other._raw)

    __hash__ = None  # mutable-looking container; compare by content

    @property
    def raw_ids(self) -> np.ndarray:
        """Raw ids in index order (object array of str)."""
        return self._raw

    def to_index(self, raw_ids, *, what: str = "id") -> np.ndarray:
        """Map raw ids to indices; raises ``KeyError`` naming the first unknown id."""
        out = np.empty(len(raw_ids), dtype=np.int64)
        for pos, r in enumerate(raw_ids):
            try:
                out[pos] = self._index[str(r)]
            except KeyError:
                raise KeyError(f"unknown {what} {r!r} (position {pos}); it is not in the id map") from None
        return out

    def lookup(self, raw_ids) -> np.ndarray:
        """Map raw ids to indices, ``-1`` for unknown ids (for counted skips)."""
        get = self._index.get
        return np.fromiter((get(str(r), -1) for r in raw_ids), dtype=np.int64, count=len(raw_ids))

    def to_raw(self, indices) -> np.ndarray:
        return self._raw[np.asarray(indices, dtype=np.int64)]


@dataclass(eq=False)
class Interactions:
    """Implicit-feedback interactions between ``len(users)`` users and ``len(items)`` items.

    ``user_index``/``item_index`` are parallel int64 arrays; ``timestamps`` and
    ``ratings`` are optional parallel float arrays.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"user": ["a", "a", "b"], "item": ["x", "y", "x"]})
        >>> data = Interactions.from_frame(df)
        >>> data.n_users, data.n_items, data.matrix.nnz
        (2, 2, 3)
    """

    users: IdMap
    items: IdMap
    user_index: np.ndarray
    item_index: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    source: str = field(default="<memory>")

    def __post_init__(self) -> None:
        self.user_index = np.asarray(self.user_index, dtype=np.int64)
        self.item_index = np.asarray(self.item_index, dtype=np.int64)
        n = len(self.user_index)
        if len(self.item_index) != n:
            raise ValueError(f"{self.source}: user_index has {n} entries but item_index {len(self.item_index)}")
        for name in ("timestamps", "ratings"):
            values = getattr(self, name)
            if values is not None:
                values = np.asarray(values, dtype=np.float64)
                if len(values) != n:
                    raise ValueError(f"{self.source}: {name} has {len(values)} entries, expected {n}")
                setattr(self, name, values)
        if n and (self.user_index.min() < 0 or self.user_index.max() >= len(self.users)):
            raise ValueError(f"{self.source}: user index out of range [0, {len(self.users)})")
        if n and (self.item_index.min() < 0 or self.item_index.max() >= len(self.items)):
            raise ValueError(f"{self.source}: item index out of range [0, {len(self.items)})")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user_col: str = "user",
        item_col: str = "item",
        time_col: str | None = None,
        rating_col: str | None = None,
        rating_threshold: float | None = None,
        users: IdMap | None = None,
        items: IdMap | None = None,
        deduplicate: bool = True,
        source: str = "<frame>",
    ) -> "Interactions":
        """Build interactions from a DataFrame of raw ids.

        Rows below ``rating_threshold`` are dropped (implicit feedback). Repeated
        (user, item) pairs keep their latest row when ``deduplicate``. Id maps are
        built in first-seen order unless given (then unknown ids raise ``KeyError``).
        """
        for col in (user_col, item_col, time_col, rating_col):
            if col is not None and col not in frame.columns:
                raise KeyError(f"{source}: missing column {col!r}; found {list(frame.columns)}")
        if rating_threshold is not None:
            if rating_col is None:
                raise ValueError(f"{source}: rating_threshold needs a rating column")
            frame = frame[frame[rating_col] >= rating_threshold]
        frame = frame.assign(_u=frame[user_col].astype(str), _i=frame[item_col].astype(str))
        users = users or IdMap(pd.unique(frame["_u"]))  # first-seen order of the input rows
        items = items or IdMap(pd.unique(frame["_i"]))
        if deduplicate:
            if time_col is not None:
                frame = frame.sort_values(time_col, kind="stable")
            frame = frame.drop_duplicates(["_u", "_i"], keep="last")
        return cls(
            users=users,
            items=items,
            user_index=users.to_index(frame["_u"].to_numpy(), what="user"),
            item_index=items.to_index(frame["_i"].to_numpy(), what="item"),
            timestamps=None if time_col is None else frame[time_col].to_numpy(dtype=np.float64),
            ratings=None if rating_col is None else frame[rating_col].to_numpy(dtype=np.float64),
            source=source,
        )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.user_index)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """Binary CSR matrix ``[n_users, n_items]`` (float32, sorted indices)."""
        data = np.ones(len(self), dtype=np.float32)
        mat = sp.csr_matrix((data, (self.user_index, self.item_index)), shape=(self.n_users, self.n_items))
        mat.sum_duplicates()
        mat.data[:] = 1.0
        mat.sort_indices()
        return mat

    def item_popularity(self) -> np.ndarray:
        """Number of interactions per item (int64, length ``n_items``)."""
        return np.bincount(self.item_index, minlength=self.n_items)

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.user_index, minlength=self.n_users)

    def active_users(self) -> np.ndarray:
        """Indices of users with at least one interaction here."""
        return np.flatnonzero(self.user_counts())

    def subset(self, mask_or_index) -> "Interactions":
        """Rows selected by a boolean mask or index array; id maps are shared."""
        sel = np.asarray(mask_or_index)
        return Interactions(
            users=self.users,
            items=self.items,
            user_index=self.user_index[sel],
            item_index=self.item_index[sel],
            timestamps=None if self.timestamps is None else self.timestamps[sel],
            ratings=None if self.ratings is None else self.ratings[sel],
            source=self.source,
        )

    def to_frame(self, *, raw: bool = True) -> pd.DataFrame:
        """A DataFrame ``user, item[, timestamp][, rating]`` with raw (or index) ids."""
        frame = pd.DataFrame(
            {
                "user": self.users.to_raw(self.user_index) if raw else self.user_index,
                "item": self.items.to_raw(self.item_index) if raw else self.item_index,
            }
        )
        for name, values in (("timestamp", self.timestamps), ("rating", self.ratings)):
            if values is not None:
                frame[name] = _integers_as_integers(values)
        return frame

    def k_core(self, k: int, *, item_k: int | None = None) -> "Interactions":
        """Repeatedly drop users with < ``k`` and items with < ``item_k`` (default ``k``)
        interactions, then re-index the survivors (id maps are rebuilt)."""
        item_k = k if item_k is None else item_k
        keep = np.ones(len(self), dtype=bool)
        while True:
            users, items = self.user_index[keep], self.item_index[keep]
            ucount = np.bincount(users, minlength=self.n_users)
            icount = np.bincount(items, minlength=self.n_items)
            bad = (ucount[self.user_index] < k) | (icount[self.item_index] < item_k)
            new_keep = keep & ~bad
            if new_keep.sum() == keep.sum():
                break
            keep = new_keep
        return self.subset(keep).reindexed()

    def reindexed(self) -> "Interactions":
        """Drop users and items that have no interaction; indices become contiguous."""
        used_users = np.unique(self.user_index)
        used_items = np.unique(self.item_index)
        user_remap = np.full(self.n_users, -1, dtype=np.int64)
        user_remap[used_users] = np.arange(len(used_users))
        item_remap = np.full(self.n_items, -1, dtype=np.int64)
        item_remap[used_items] = np.arange(len(used_items))
        return Interactions(
            users=IdMap(self.users.raw_ids[used_users]),
            items=IdMap(self.items.raw_ids[used_items]),
            user_index=user_remap[self.user_index],
            item_index=item_remap[self.item_index],
            timestamps=self.timestamps,
            ratings=self.ratings,
            source=self.source,
        )

    def __repr__(self) -> str:
        return f"Interactions({self.n_users} users, {self.n_items} items, {len(self)} interactions, source={self.source!r})"


def _integers_as_integers(values: np.ndarray) -> np.ndarray:
    """``values`` as int64 when every value is a whole number (so CSVs say ``881250949``, not ``881250949.0``).

    Example:
        >>> _integers_as_integers(np.array([3.0, 881250949.0])).tolist(), _integers_as_integers(np.array([3.5])).tolist()
        ([3, 881250949], [3.5])
    """
    values = np.asarray(values)
    if values.dtype.kind == "f" and len(values) and np.isfinite(values).all() and (values == np.round(values)).all() \
            and np.abs(values).max() < 2**62:
        return values.astype(np.int64)
    return values
