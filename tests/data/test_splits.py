import numpy as np
import pandas as pd
import pytest

from prismrec.data import IdMap, Interactions
from prismrec.data.splits import (cold_start_items, global_temporal, leave_one_out, make_split,
                                  per_user_ratio)


def random_data(seed=0, n=4000):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"user": rng.integers(0, 120, n), "item": rng.integers(0, 80, n), "t": rng.random(n)})
    return Interactions.from_frame(frame, time_col="t")


def pairs(part):
    return set(zip(part.user_index.tolist(), part.item_index.tolist()))


@pytest.mark.parametrize("strategy", ["random_per_user", "temporal_per_user", "global_temporal",
                                      "leave_one_out", "cold_start_items"])
def test_every_split_is_leak_free_and_deterministic(strategy):
    data = random_data()
    split = make_split(data, strategy)
    split.check_disjoint()
    assert not pairs(split.train) & (pairs(split.valid) | pairs(split.test))
    assert len(split.train) + len(split.valid) + len(split.test) == len(data)
    again = make_split(data, strategy)
    assert pairs(again.test) == pairs(split.test) and pairs(again.valid) == pairs(split.valid)


def test_random_ratio_seed_changes_the_split_and_sizes_follow_ratio():
    data = random_data()
    a, b = per_user_ratio(data, seed=1), per_user_ratio(data, seed=2)
    assert pairs(a.test) != pairs(b.test)
    assert 0.75 < len(a.train) / len(data) < 0.85


def test_duplicated_rows_never_leak():
    frame = pd.DataFrame({"user": ["u"] * 6, "item": ["a", "b", "c", "d", "e", "a"], "t": range(6)})
    data = Interactions.from_frame(frame, time_col="t", deduplicate=False)
    split = leave_one_out(data)
    split.check_disjoint()  # the repeated (u, a) at the end must not sit in test while (u, a) is in train
    assert pairs(split.test) == set()


def test_temporal_per_user_puts_latest_in_test():
    frame = pd.DataFrame({"user": ["u"] * 10, "item": list("abcdefghij"), "t": range(10)})
    split = per_user_ratio(Interactions.from_frame(frame, time_col="t"), temporal=True)
    assert split.test.items.to_raw(split.test.item_index).tolist() == ["j"]
    assert split.valid.items.to_raw(split.valid.item_index).tolist() == ["i"]


def test_leave_one_out_last_is_test_second_last_is_valid():
    frame = pd.DataFrame({"user": ["u", "u", "u", "v", "v"], "item": ["c", "a", "b", "a", "b"], "t": [3, 1, 2, 1, 2]})
    split = leave_one_out(Interactions.from_frame(frame, time_col="t"))
    raw = lambda part: sorted(zip(part.users.to_raw(part.user_index), part.items.to_raw(part.item_index)))
    assert raw(split.test) == [("u", "c")] and raw(split.valid) == [("u", "b")]
    assert raw(split.train) == [("u", "a"), ("v", "a"), ("v", "b")]  # v has < 3 interactions


def test_global_temporal_cuts_the_timeline():
    data = random_data()
    split = global_temporal(data)
    assert split.train.timestamps.max() <= split.test.timestamps.min()


def test_cold_start_items_never_in_train():
    data = random_data()
    split = cold_start_items(data, cold_fraction=0.25, seed=3)
    train_items = set(split.train.item_index.tolist())
    assert not train_items & set(split.test.item_index.tolist())
    assert not train_items & set(split.valid.item_index.tolist())
    assert set(split.test.item_index.tolist()) <= set(split.cold_items.tolist())


def test_temporal_split_without_timestamps_is_a_clear_error():
    data = Interactions(IdMap("ab"), IdMap("xy"), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="needs timestamps"):
        per_user_ratio(data, temporal=True)
    with pytest.raises(KeyError, match="unknown split strategy"):
        make_split(data, "by_magic")


def test_subsample_train_keeps_a_share_of_each_users_training_interactions(checkerboard):
    from prismrec.data.splits import per_user_ratio, subsample_train

    split = per_user_ratio(checkerboard, (0.8, 0.1, 0.1), seed=0)
    sparse = subsample_train(split, 0.25, seed=1)
    full_counts = np.bincount(split.train.user_index, minlength=split.train.n_users)
    counts = np.bincount(sparse.train.user_index, minlength=split.train.n_users)
    expected = np.where(full_counts > 0, np.maximum(1, np.ceil(full_counts * 0.25)), 0)
    assert np.array_equal(counts, expected)
    keys = set(zip(sparse.train.user_index.tolist(), sparse.train.item_index.tolist()))
    assert keys <= set(zip(split.train.user_index.tolist(), split.train.item_index.tolist()))
    assert sparse.test is split.test and sparse.valid is split.valid
    again = subsample_train(split, 0.25, seed=1)
    assert np.array_equal(again.train.item_index, sparse.train.item_index)
    assert subsample_train(split, 1.0) is split
