"""Direct recommendation: candidates in the prompt, VIP5's sampled protocol (labelled)."""
from __future__ import annotations

import numpy as np
import pytest

from prismrec.data.splits import leave_one_out
from prismrec.foundation.direct import candidate_scores, evaluate_direct, sampled_candidates
from prismrec.models.foundation import FoundationRecommender
from conftest import block_of_items, make_checkerboard
from foundation_parts import one_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def trained():
    split = leave_one_out(make_checkerboard(30, 16))
    model = FoundationRecommender(preset="tiny", epochs=15, learning_rate=0.01, batch_size=32, n_clusters=2,
                                  leaf_size=8, beam_size=0, validation_users=0, tokenizer_vocab=100, dropout=0.0,
                                  direct_share=1.0, direct_candidates=4, patience=100)
    return split, model.fit(split.train, split.valid)


def test_direct_prompts_teach_the_users_block(trained):
    split, model = trained
    blocks, rng = block_of_items(16), np.random.default_rng(0)
    candidates = np.array([[item, *rng.choice(np.flatnonzero(blocks != blocks[item]), 3, replace=False)]
                           for item in split.test.item_index])
    scores = candidate_scores(model, split.test.user_index, candidates)
    assert float((scores.argmax(1) == 0).float().mean()) >= 0.6  # the own-block item first; chance is 0.25


def test_sampled_protocol_is_labelled_and_never_samples_known_items(trained):
    split, model = trained
    result = evaluate_direct(model, split, n_negatives=5, ks=(1, 3))
    assert "sampled" in result["protocol"] and set(result["summary"]) == {
        "hit@1/sampled5", "ndcg@1/sampled5", "hit@3/sampled5", "ndcg@3/sampled5"}
    assert result["summary"]["hit@1/sampled5"] <= result["summary"]["hit@3/sampled5"]
    known = (split.train.matrix + split.valid.matrix + split.test.matrix).tocsr()
    users = split.test.user_index
    negatives = sampled_candidates(known, users, 16, 5, seed=0)[:, 1:]
    for user, row in zip(users, negatives):
        assert not np.isin(row, known[user].indices).any() and len(set(row)) == 5
    with pytest.raises(ValueError, match="fewer than n_negatives=15"):
        sampled_candidates(known, users, 16, 15)
