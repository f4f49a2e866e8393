import numpy as np
import pandas as pd
import pytest

from prismrec.data import IdMap, Interactions


def frame(rows):
    return pd.DataFrame(rows, columns=["user", "item", "rating", "t"])


def test_from_frame_builds_maps_matrix_and_dedupes_keeping_latest():
    data = Interactions.from_frame(
        frame([("a", "x", 5, 1), ("a", "y", 3, 2), ("b", "x", 4, 3), ("a", "x", 2, 9)]),
        time_col="t", rating_col="rating")
    assert data.n_users == 2 and data.n_items == 2 and len(data) == 3
    assert data.matrix.toarray().tolist() == [[1, 1], [1, 0]]
    row = np.flatnonzero((data.users.to_raw(data.user_index) == "a") & (data.items.to_raw(data.item_index) == "x"))
    assert data.ratings[row].tolist() == [2.0] and data.timestamps[row].tolist() == [9.0]


def test_rating_threshold_keeps_only_positive_feedback():
    data = Interactions.from_frame(frame([("a", "x", 5, 1), ("a", "y", 3, 2), ("b", "x", 4, 3)]),
                                   rating_col="rating", rating_threshold=4)
    assert sorted(zip(data.users.to_raw(data.user_index), data.items.to_raw(data.item_index))) == [("a", "x"), ("b", "x")]


def test_k_core_is_iterative():
    # u3 has 1 interaction -> removed; then item z loses its 2nd user and is removed; that drops u2 below 2
    rows = [("u1", "x", 1, 0), ("u1", "y", 1, 0), ("u2", "x", 1, 0), ("u2", "y", 1, 0), ("u2", "z", 1, 0),
            ("u3", "z", 1, 0), ("u4", "x", 1, 0), ("u4", "y", 1, 0)]
    core = Interactions.from_frame(frame(rows)).k_core(2)
    assert sorted(core.users.raw_ids) == ["u1", "u2", "u4"]
    assert sorted(core.items.raw_ids) == ["x", "y"]
    assert len(core) == 6


def test_idmap_unknown_id_is_named():
    ids = IdMap(["a", "b"])
    with pytest.raises(KeyError, match="unknown user 'zz'"):
        ids.to_index(["a", "zz"], what="user")
    assert ids.lookup(["b", "zz"]).tolist() == [1, -1]


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="missing column 'timestamp'"):
        Interactions.from_frame(frame([("a", "x", 1, 1)]), time_col="timestamp", source="my.csv")


def test_item_popularity_and_active_users():
    data = Interactions(IdMap("abc"), IdMap("xy"), [0, 0, 2], [0, 1, 0])
    assert data.item_popularity().tolist() == [2, 1]
    assert data.active_users().tolist() == [0, 2]
