import numpy as np
import pytest
import torch

from prismrec.data import IdMap, Interactions
from prismrec.evaluation import Evaluator
from prismrec.evaluation.significance import paired_t_test, seed_summary
from prismrec.models.base import Recommender


class FixedScores(Recommender):
    """A fitted-by-construction model that returns a given score matrix (a test double)."""

    def __init__(self, scores=None):
        self.scores = scores

    def score(self, user_ids):
        return torch.as_tensor(np.asarray(self.scores, dtype=np.float32)[np.asarray(user_ids)])


def fixed(scores):
    model = FixedScores(scores)
    model.n_users_, model.n_items_ = np.shape(scores)
    return model


def part(pairs, n_users=3, n_items=6):
    users, items = zip(*pairs) if pairs else ((), ())
    return Interactions(IdMap(range(n_users)), IdMap(range(n_items)), list(users), list(items))


SCORES = [[6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9]]


def test_train_and_valid_items_are_masked_and_metrics_hand_computed():
    train = part([(0, 0), (1, 5)])
    valid = part([(0, 1)])
    test = part([(0, 2), (0, 5), (1, 0)])
    result = Evaluator(ks=(1, 2), metrics=("recall", "hit", "precision")).evaluate(fixed(SCORES), test, [train, valid])
    # user 0 ranking after masking items 0 and 1: [2, 3, 4, 5]; user 1 after masking 5: [4, 3, 2, 1, 0]
    assert result.users.tolist() == [0, 1]  # user 2 has no test item and is not evaluated
    assert result.topk[:, :2].tolist() == [[2, 3], [4, 3]]
    assert result.per_user["recall@1"].tolist() == [0.5, 0.0]
    assert result.per_user["precision@2"].tolist() == [0.5, 0.0]
    assert result["hit@2"] == 0.5
    assert result["coverage@1"] == pytest.approx(2 / 6)


def test_without_valid_mask_the_valid_item_would_be_ranked_first():
    train, valid, test = part([(0, 0)]), part([(0, 1)]), part([(0, 2)])
    masked = Evaluator(ks=(1,), metrics=("hit",)).evaluate(fixed(SCORES), test, [train, valid])
    unmasked = Evaluator(ks=(1,), metrics=("hit",)).evaluate(fixed(SCORES), test, [train])
    assert masked["hit@1"] == 1.0 and unmasked["hit@1"] == 0.0


def test_batches_give_the_same_result_as_one_batch():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30))
    test = part([(u, int(i)) for u in range(50) for i in rng.choice(30, 3, replace=False)], 50, 30)
    one = Evaluator(ks=(5, 10), batch_size=1000).evaluate(fixed(scores), test)
    many = Evaluator(ks=(5, 10), batch_size=7).evaluate(fixed(scores), test)
    for key in one.summary:
        assert one[key] == pytest.approx(many[key])


def test_sampled_mode_is_labelled_and_ranks_positive_among_sampled_negatives():
    n_items = 101
    scores = np.tile(np.arange(n_items, dtype=np.float32)[::-1], (1, 1))  # item 0 best, item 100 worst
    test = part([(0, 50)], 1, n_items)
    full = Evaluator(ks=(10,), metrics=("hit",)).evaluate(fixed(scores), test)
    sampled = Evaluator(ks=(10,), metrics=("hit",), sampled_negatives=5, seed=1).evaluate(fixed(scores), test)
    assert full["hit@10"] == 0.0
    assert "hit@10/sampled5" in sampled.summary and sampled.protocol.startswith("sampled")
    ranked = sampled.topk[0][np.isin(sampled.topk[0], np.arange(n_items))]
    # exactly 6 candidates can carry a finite score: the positive and 5 negatives
    candidate_scores = fixed(scores).score([0])[0][ranked[:6]]
    assert torch.isfinite(candidate_scores).all() and 50 in ranked[:6].tolist()


def test_candidate_items_restrict_the_ranking():
    test = part([(0, 4)])
    result = Evaluator(ks=(1,), metrics=("hit",)).evaluate(fixed(SCORES), test, candidate_items=[3, 4])
    assert result.topk[0, 0] == 3 and result["hit@1"] == 0.0


def test_per_user_vectors_round_trip(tmp_path):
    test = part([(0, 2), (1, 0)])
    result = Evaluator(ks=(2,)).evaluate(fixed(SCORES), test)
    result.save(tmp_path / "r.npz")
    users, per_user = result.load_per_user(tmp_path / "r.npz")
    assert users.tolist() == [0, 1] and np.array_equal(per_user["ndcg@2"], result.per_user["ndcg@2"])


def test_bad_inputs_are_clear():
    with pytest.raises(KeyError, match="unknown metric"):
        Evaluator(metrics=("auc",))
    with pytest.raises(ValueError, match="no users"):
        Evaluator().evaluate(fixed(SCORES), part([]))
    with pytest.raises(ValueError, match="disagree on shape"):
        Evaluator().evaluate(fixed(SCORES), part([(0, 1)]), part([(0, 1)], 4, 6))


def test_paired_t_test_matches_scipy_and_seed_summary():
    from scipy import stats

    a, b = [0.1, 0.5, 0.3, 0.2], [0.2, 0.6, 0.5, 0.2]
    test = paired_t_test([3, 1, 2, 0], a, [0, 1, 2, 3], [b[3], b[1], b[2], b[0]], "ndcg")
    assert test.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    summary = seed_summary({1: {"m": 1.0}, 2: {"m": 3.0}})
    assert summary["m"] == pytest.approx((2.0, np.sqrt(2.0)))


# ---------------------------------------------------------------- protocols that cannot mislead (issue 6, §1)
def test_a_cutoff_larger_than_the_catalogue_is_an_error_naming_the_limit():
    test = part([(0, 2)])
    with pytest.raises(ValueError, match=r"k=2000 is larger than the catalogue's 6 items.*at most 6"):
        Evaluator(ks=(2, 2000)).evaluate(fixed(SCORES), test)
    with pytest.raises(ValueError, match=r"k=3 is larger than the 2 cold test items"):
        Evaluator(ks=(3,)).evaluate(fixed(SCORES), test, candidate_items=[2, 3], candidates_label="cold test items")


@pytest.mark.parametrize("bad", [-1, 0, 2.5, "ten", True])
def test_sampled_negatives_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="sampled_negatives must be a positive number"):
        Evaluator(sampled_negatives=bad)


@pytest.mark.parametrize("bad", [["ten"], "ten", [0], [], [10, 2.5]])
def test_cutoffs_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match="positive integers"):
        Evaluator(ks=bad)


def test_a_sample_as_large_as_the_catalogue_is_labelled_full_ranking():
    test = part([(0, 2)])
    with pytest.warns(UserWarning, match="this is full ranking"):
        result = Evaluator(ks=(2,), metrics=("hit",), sampled_negatives=5000).evaluate(fixed(SCORES), test)
    assert result.protocol == "full ranking over all 6 items"
    assert "hit@2" in result.summary and not any("sampled" in key for key in result.summary)
    full = Evaluator(ks=(2,), metrics=("hit",)).evaluate(fixed(SCORES), test)
    assert result.summary == full.summary


def test_protocol_names_the_candidate_set_and_sampling():
    test = part([(0, 4)], 1, 6)
    result = Evaluator(ks=(1,), metrics=("hit",)).evaluate(fixed(SCORES[:1]), test, candidate_items=[3, 4],
                                                           candidates_label="cold test items")
    assert result.protocol == "full ranking over the 2 cold test items"
    rng = np.random.default_rng(0)
    scores = rng.random((1, 200))
    sampled = Evaluator(ks=(1,), metrics=("hit",), sampled_negatives=3).evaluate(
        fixed(scores), part([(0, 0)], 1, 200), candidate_items=np.arange(100), candidates_label="cold test items")
    assert sampled.protocol.startswith("sampled: positives + 3 sampled negatives") and "100 cold" in sampled.protocol
    finite = np.isfinite(sampled.topk_scores[0])
    assert finite.sum() == 1  # k=1; the sampled candidates all lie in the candidate set:
    assert sampled.topk[0, 0] < 100


def test_topk_scores_are_the_scores_of_the_topk_items():
    test = part([(0, 2), (1, 0)])
    result = Evaluator(ks=(2,)).evaluate(fixed(SCORES), test)
    expected = np.take_along_axis(np.asarray(SCORES, dtype=np.float32)[result.users], result.topk, axis=1)
    assert np.array_equal(result.topk_scores, expected)


def test_ties_are_broken_by_a_seeded_random_order_not_by_item_index():
    n_items = 200
    test = part([(0, i) for i in range(10)], 1, n_items)  # the first ten items are relevant
    flat = fixed(np.zeros((1, n_items)))  # an uninformed model: every score ties
    result = Evaluator(ks=(10,), metrics=("recall",)).evaluate(flat, test)
    assert result["recall@10"] < 0.5  # index order would give 1.0
    again = Evaluator(ks=(10,), metrics=("recall",)).evaluate(flat, test)
    assert np.array_equal(result.topk, again.topk)


def test_nan_scores_are_refused_instead_of_ranked_first():
    """torch.topk ranks NaN above every number (MMRec's zero-feature items reach its top-K that way)."""
    scores = np.array(SCORES, dtype=np.float32)
    assert torch.topk(torch.tensor([0.5, float("nan"), 0.9]), 1).indices.item() == 1  # the hazard itself
    scores[1, 2] = np.nan
    test = part([(0, 2), (1, 0)])
    with pytest.raises(ValueError, match=r"1 NaN scores for 1 of 2 users \(first: user 1, item 2\)"):
        Evaluator(ks=(2,)).evaluate(fixed(scores), test)
