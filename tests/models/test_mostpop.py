"""MostPopular: counts order the items; ties follow a seeded permutation, not the item index."""
from __future__ import annotations

import numpy as np

from prismrec.models import MostPopular


def test_more_interactions_rank_higher_and_ties_are_not_in_index_order(checkerboard):
    train = checkerboard.subset(checkerboard.item_index >= 10)  # items 0..9 never seen: all tied at 0
    model = MostPopular().fit(train)
    counts = train.item_popularity()
    scores = model.score([0]).numpy()[0]
    order = np.argsort(-scores, kind="stable")
    assert (np.diff(counts[order]) <= 0).all()  # counts never increase down the ranking
    cold_order = [item for item in order if item < 10]
    assert sorted(cold_order) == list(range(10)) and cold_order != list(range(10))
    assert cold_order != sorted(cold_order, reverse=True)
    other_seed = np.argsort(-MostPopular(seed=1).fit(train).score([0]).numpy()[0], kind="stable")
    assert [item for item in other_seed if item < 10] != cold_order  # the tie-break is the seed's
    np.testing.assert_array_equal(MostPopular().fit(train).score([0]).numpy()[0], scores)
