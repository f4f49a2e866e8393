"""Metrics against hand-computed values and against pytrec_eval (trec_eval's own code)."""
import math

import numpy as np
import pytest
import torch

from prismrec.evaluation import metrics

# one user, ranked list [r, n, r, n, n]; 3 relevant items in total (one never retrieved)
HITS = torch.tensor([[True, False, True, False, False]])
N_REL = torch.tensor([3])


def test_hand_computed_values_at_5():
    assert metrics.recall(HITS, N_REL, 5).item() == pytest.approx(2 / 3)
    assert metrics.precision(HITS, N_REL, 5).item() == pytest.approx(2 / 5)
    assert metrics.hit_rate(HITS, N_REL, 5).item() == 1.0
    assert metrics.mrr(HITS, N_REL, 5).item() == 1.0
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg(HITS, N_REL, 5).item() == pytest.approx(dcg / idcg, rel=1e-6)
    assert metrics.average_precision(HITS, N_REL, 5).item() == pytest.approx((1 + 2 / 3) / 3)


def test_cutoff_smaller_than_list_and_no_hit_user():
    hits = torch.tensor([[False, True, True], [False, False, False]])
    n_rel = torch.tensor([1, 2])
    assert metrics.mrr(hits, n_rel, 3).tolist() == pytest.approx([0.5, 0.0])
    assert metrics.hit_rate(hits, n_rel, 1).tolist() == [0.0, 0.0]
    # ideal DCG is capped at k: one relevant item at rank 2 of a 1-relevant user
    assert metrics.ndcg(hits, n_rel, 2)[0].item() == pytest.approx(1 / math.log2(3), rel=1e-6)
    with pytest.raises(ValueError, match="exceeds the list length"):
        metrics.recall(hits, n_rel, 4)


def test_matches_pytrec_eval_on_random_rankings():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(7)
    n_users, n_items, k = 40, 60, 10
    qrels, run, hit_rows, n_rel = {}, {}, [], []
    for user in range(n_users):
        relevant = set(rng.choice(n_items, size=rng.integers(1, 8), replace=False).tolist())
        ranking = rng.permutation(n_items)[:k]
        qrels[f"q{user}"] = {f"d{i}": 1 for i in relevant}
        run[f"q{user}"] = {f"d{item}": float(k - rank) for rank, item in enumerate(ranking)}
        hit_rows.append([int(item) in relevant for item in ranking])
        n_rel.append(len(relevant))
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recall_10", "P_10", "ndcg_cut_10", "map_cut_10", "recip_rank"})
    expected = trec.evaluate(run)
    hits, n_rel = torch.tensor(hit_rows), torch.tensor(n_rel)
    ours = {
        "recall_10": metrics.recall(hits, n_rel, k), "P_10": metrics.precision(hits, n_rel, k),
        "ndcg_cut_10": metrics.ndcg(hits, n_rel, k), "map_cut_10": metrics.average_precision(hits, n_rel, k),
        "recip_rank": metrics.mrr(hits, n_rel, k),
    }
    for measure, values in ours.items():
        reference = [expected[f"q{u}"][measure] for u in range(n_users)]
        np.testing.assert_allclose(values.numpy(), reference, rtol=1e-5, atol=1e-6, err_msg=measure)
