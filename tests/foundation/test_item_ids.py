"""Item indexing: uniqueness, known structure, and the P5 leak (and its absence)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from prismrec.data import Interactions
from prismrec.data.sequences import user_sequences
from prismrec.data.splits import leave_one_out
from prismrec.foundation.item_ids import (ItemIndex, build_item_index, co_occurrence, collaborative_ids, digits,
                                          semantic_ids, sequential_ids)


def random_sequences(n_users=300, n_items=400, length=6, seed=0) -> Interactions:
    """Users buy ``length`` distinct random items, one per time step."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", t) for u in range(n_users)
            for t, i in enumerate(rng.choice(n_items, size=length, replace=False))]
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "t"]), time_col="t")


def as_number(index: ItemIndex, base: int) -> np.ndarray:
    """The integer an item's digit tokens spell (random/sequential ids)."""
    powers = base ** np.arange(index.codes.shape[1] - 1, -1, -1)
    return index.codes @ powers


def max_plus_one_rate(index: ItemIndex, history: list[np.ndarray], test_items: np.ndarray, base: int) -> float:
    """Share of users whose test item's number is max(history numbers) + 1: P5's leak."""
    numbers = as_number(index, base)
    hits = [numbers[t] == numbers[h].max() + 1 for h, t in zip(history, test_items)]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def split():
    return leave_one_out(random_sequences())


def test_sequential_ids_leak_the_test_item_and_leak_free_ids_do_not(split):
    full = user_sequences(split.train, split.valid, split.test)  # P5 numbers the whole file
    history = user_sequences(split.train, split.valid)
    test_items = np.array([s[-1] for s in full])
    leaky = sequential_ids(full, split.train.n_items, base=16)
    assert leaky.leaky and "LEAKY" in leaky.label
    leak_rate = max_plus_one_rate(leaky, history, test_items, 16)
    assert leak_rate > 0.1  # 40x chance: the first user to buy new items sees consecutive numbers
    chance = 1 / split.train.n_items
    for seed in range(3):
        clean = build_item_index("random", n_items=split.train.n_items, seed=seed, base=16)
        assert not clean.leaky
        assert max_plus_one_rate(clean, history, test_items, 16) < 10 * chance + 0.01


def test_leak_free_ids_are_built_without_the_test_items(split):
    """Changing every user's test item leaves the ids unchanged: they cannot encode it."""
    rng = np.random.default_rng(1)
    moved = split.test.subset(np.arange(len(split.test)))
    moved.item_index = rng.permutation(moved.item_index)
    train_sequences = user_sequences(split.train)
    embeddings = rng.normal(size=(split.train.n_items, 8))
    for scheme in ("random", "collaborative", "semantic"):
        made = build_item_index(scheme, n_items=split.train.n_items, sequences=train_sequences,
                                embeddings=embeddings, n_clusters=4, leaf_size=16, codebook_size=8)
        again = build_item_index(scheme, n_items=split.train.n_items, sequences=user_sequences(split.train),
                                 embeddings=embeddings, n_clusters=4, leaf_size=16, codebook_size=8)
        assert np.array_equal(made.codes, again.codes) and made.fingerprint() == again.fingerprint()
    # whereas P5's numbering of the whole file moves with the test items
    before = sequential_ids(user_sequences(split.train, split.test), split.train.n_items)
    after = sequential_ids(user_sequences(split.train, moved), split.train.n_items)
    assert not np.array_equal(before.codes, after.codes)


def test_digits_and_random_ids_are_unique_fixed_width():
    assert digits(np.array([0, 1, 15, 16]), 16).tolist() == [[0, 0], [0, 1], [0, 15], [1, 0]]
    index = build_item_index("random", n_items=100, base=10, seed=3)
    assert index.codes.shape == (100, 2)
    assert len({tuple(row) for row in index.codes}) == 100
    assert index.tokens_of(0)[0].startswith("<a_") and index.tokens_of(0)[1].startswith("<b_")


def test_collaborative_ids_put_co_occurring_items_under_one_prefix():
    # two communities of 20 items; users only buy within one
    rng = np.random.default_rng(0)
    sequences = [rng.choice(20, 5, replace=False) + 20 * (u % 2) for u in range(80)]
    index = collaborative_ids(co_occurrence(sequences, 40), n_clusters=2, leaf_size=8, seed=0)
    first = index.codes[:, 0]
    assert len(set(first[:20])) == 1 and len(set(first[20:])) == 1 and first[0] != first[20]
    assert len({tuple(r[r >= 0]) for r in index.codes}) == 40


def test_semantic_ids_follow_content_and_tell_duplicates_apart():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    embeddings = np.repeat(centres, 10, axis=0) + rng.normal(0, 0.1, size=(30, 2))
    embeddings[1] = embeddings[0]  # identical content: same codes, told apart by the last token
    index = semantic_ids(embeddings, levels=2, codebook_size=3, seed=0)
    groups = [set(index.codes[i * 10:(i + 1) * 10, 0]) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 3
    assert index.codes[0, :2].tolist() == index.codes[1, :2].tolist()
    assert {index.codes[0, 2], index.codes[1, 2]} == {0, 1}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown item id scheme 'tiger'"):
        build_item_index("tiger", n_items=3)
    with pytest.raises(ValueError, match="semantic ids need content embeddings for all 3 items"):
        build_item_index("semantic", n_items=3)
    with pytest.raises(ValueError, match="need the users' training sequences"):
        build_item_index("collaborative", n_items=3)
    with pytest.raises(ValueError, match="not unique"):
        ItemIndex("random", np.array([[0, 1], [0, 1]]))
    index = build_item_index("random", n_items=7, base=3)
    assert ItemIndex.from_json(index.to_json()).fingerprint() == index.fingerprint()


def test_items_without_co_occurrences_get_their_own_branch():
    rng = np.random.default_rng(0)
    sequences = [rng.choice(30, 4, replace=False) for _ in range(40)]  # items 30..299 never occur
    index = collaborative_ids(co_occurrence(sequences, 300), n_clusters=4, leaf_size=16, seed=0)
    first = index.codes[:, 0]
    assert len(set(first[30:])) == 1 and first[30] not in set(first[:30])
    assert len({tuple(r[r >= 0]) for r in index.codes}) == 300


def test_collaborative_ids_of_a_graph_of_many_components_do_not_depend_on_rounding():
    """Disconnected communities make the top eigenvalue of the spectral step degenerate, so its
    eigenvectors (and the ids) were any basis of that space: a 1e-12 change of the weights,
    or another process's rounding, gave other ids, and a resumed run refused its own checkpoint."""
    rng = np.random.default_rng(0)
    sequences = [rng.choice(8, 4, replace=False) + 8 * (u % 40) for u in range(400)]  # 40 communities of 8
    graph = co_occurrence(sequences, 320)
    noisy = graph.copy()
    noise = sp.triu(graph, 1)
    noise.data = noise.data * rng.uniform(-1e-12, 1e-12, len(noise.data))
    noisy = noisy + noise + noise.T
    index = collaborative_ids(graph, n_clusters=4, leaf_size=16, seed=0)
    assert collaborative_ids(noisy, n_clusters=4, leaf_size=16, seed=0).fingerprint() == index.fingerprint()
    first = index.codes[:, 0].reshape(40, 8)
    assert (first == first[:, :1]).all()  # a community stays under one prefix
    assert len({tuple(r[r >= 0]) for r in index.codes}) == 320
