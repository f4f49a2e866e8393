"""Inner-product views of the models, least-squares fold-in, and the top-k indexes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from serving_bundles import tiny_train
from prismrec.models import BPR, VBPR, LightGCN, MostPopular
from prismrec.serving.factors import FoldIn, factor_view
from prismrec.serving.index import ExactIndex, HnswIndex, make_index, recall_at_k


@pytest.fixture(scope="module")
def train():
    return tiny_train()


@pytest.mark.parametrize("make", [
    lambda: MostPopular(), lambda: BPR(factors=4, epochs=2), lambda: LightGCN(embedding_size=4, epochs=2),
    lambda: VBPR(feature_names=("image",), factors=3, visual_factors=2, epochs=2)])
def test_the_view_reproduces_the_models_scores(train, make):
    features = {"image": np.random.default_rng(0).normal(size=(train.n_items, 5)).astype(np.float32)}
    model = make().fit(train, item_features=features if isinstance(make(), VBPR) else None)
    view = factor_view(model)
    torch.testing.assert_close(view.user_vectors @ view.item_vectors.T, model.score(np.arange(train.n_users)),
                               rtol=1e-5, atol=1e-4)


def test_a_model_without_a_view_gets_a_clear_error():
    with pytest.raises(TypeError, match="serving_factors"):
        factor_view(object())


def test_fold_in_solves_the_weighted_least_squares_problem():
    """Compare with the objective written out over every item and solved by numpy's lstsq."""
    rng = np.random.default_rng(0)
    items = rng.normal(size=(12, 4))
    items[:, 3] = rng.normal(size=12)  # the last column is the item bias (a constant-1 user column)
    positives, prior, w0, reg = [1, 5, 6], rng.normal(size=3), 0.05, 0.7
    fold = FoldIn(torch.tensor(items[:8]), free_dims=3, missing_weight=w0, regularization=reg)
    fold.add_items(torch.tensor(items[8:]))  # incremental adds keep the Gram matrix exact
    solved = fold.user_vector(torch.tensor(items[positives]), prior=torch.tensor(prior)).numpy()
    weights = np.full(12, w0)
    weights[positives] = 1.0
    targets = -items[:, 3]
    targets[positives] += 1.0
    design = np.vstack([np.sqrt(weights)[:, None] * items[:, :3], np.sqrt(reg) * np.eye(3)])
    answer = np.linalg.lstsq(design, np.concatenate([np.sqrt(weights) * targets, np.sqrt(reg) * prior]), rcond=None)[0]
    np.testing.assert_allclose(solved, answer, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="nothing to fold in"):
        FoldIn(torch.ones(3, 1), free_dims=0)


def test_exact_index_matches_brute_force_and_skips_excluded_items():
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    index = ExactIndex(items, batch_size=1)
    found, scores = index.search(torch.tensor([[1.0, 0.2], [0.0, 1.0]]), k=3, exclude=[{0}, set()])
    assert found.tolist() == [[2, 1, 3], [1, 2, 0]]
    np.testing.assert_allclose(scores[0], [0.84, 0.2, -1.0], rtol=1e-6)
    index.add(torch.tensor([[2.0, 2.0]]))
    assert index.search(torch.tensor([[0.0, 1.0]]), k=1)[0].tolist() == [[4]]
    padded, padded_scores = index.search(torch.tensor([[1.0, 0.0]]), k=7, exclude=[{0, 1}])
    assert padded.tolist() == [[4, 2, 3, -1, -1, -1, -1]] and np.isinf(padded_scores[0, 3:]).all()


def test_hnsw_recall_at_10_against_exact_and_incremental_adds():
    generator = torch.Generator().manual_seed(0)
    items = torch.randn(10_000, 32, generator=generator)
    queries = torch.randn(200, 32, generator=generator)
    assert make_index(items[:100], ann_threshold=1000).kind == "exact"
    index = make_index(items[:7_500], ann_threshold=5_000)
    assert isinstance(index, HnswIndex)
    index.add(items[7_500:])
    assert len(index) == 10_000
    exclude = [set(range(q, 10_000, 1_000)) for q in range(200)]
    approximate = index.search(queries, 10, exclude)[0]
    exact = ExactIndex(items).search(queries, 10, exclude)[0]
    recall = recall_at_k(approximate, exact)
    assert recall >= 0.95, recall
    assert not any(set(row) & skip for row, skip in zip(approximate.tolist(), exclude))
    late = index.search(items[9_999:] * 10, 1)[0]  # an added item is findable
    assert late.tolist() == [[9_999]]


def test_hnsw_graph_is_cached_for_the_same_vectors(tmp_path):
    items = torch.randn(1_000, 8, generator=torch.Generator().manual_seed(1))
    first = HnswIndex(items, cache_dir=tmp_path)
    [cached] = tmp_path.glob("hnsw-*.faiss")
    again = HnswIndex(items, cache_dir=tmp_path)  # read, not rebuilt
    queries = items[:20]
    assert np.array_equal(first.search(queries, 5)[0], again.search(queries, 5)[0])
    HnswIndex(items * 2, cache_dir=tmp_path)  # other vectors, another file
    assert len(list(tmp_path.glob("hnsw-*.faiss"))) == 2 and cached.exists()


def test_a_graph_built_into_the_bundle_is_what_the_server_reads(tmp_path):
    from typer.testing import CliRunner

    from prismrec.cli import app
    from prismrec.data.interactions import IdMap, Interactions
    from prismrec.models import BPR
    from prismrec.serving.bundle import load_bundle, write_bundle
    from prismrec.serving.engine import ServingEngine

    generator = torch.Generator().manual_seed(3)
    model = BPR(factors=8)
    model.user_factors_, model.item_factors_ = torch.randn(30, 8, generator=generator), torch.randn(3_000, 8,
                                                                                                   generator=generator)
    model.item_bias_, model.n_users_, model.n_items_ = torch.zeros(3_000), 30, 3_000
    users, items = IdMap([f"u{u}" for u in range(30)]), IdMap([f"i{i}" for i in range(3_000)])
    write_bundle(tmp_path / "run", model=model, train=Interactions(users, items, np.arange(30), np.arange(30)))
    result = CliRunner().invoke(app, ["index", str(tmp_path / "run"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    [graph] = (tmp_path / "run" / "index").glob("hnsw-*.faiss")
    engine = ServingEngine(load_bundle(tmp_path / "run"), state_dir=tmp_path / "state", ann_threshold=1_000)
    assert engine.index.kind == "hnsw" and engine.index.path == graph
    assert not (tmp_path / "state" / "index").exists()  # read from the bundle, nothing rebuilt
    served = np.array([[items.to_index([r["item_id"]])[0] for r in engine.recommend(u, 10)] for u in users.raw_ids])
    exact = ExactIndex(engine.item_vectors).search(engine.user_vectors, 10, engine.seen)[0]
    assert recall_at_k(served, exact) >= 0.95 and not any(u in row for u, row in enumerate(served))
    tuned = ServingEngine(load_bundle(tmp_path / "run"), state_dir=tmp_path / "state", ann_threshold=1_000,
                          ef_search=40)  # `prismrec serve --ef-search 40`
    assert engine.index.ef_search == 64 and tuned.index.ef_search == 40 and tuned.index.path == graph


def test_exact_index_single_query_path_agrees_with_the_batched_path():
    generator = torch.Generator().manual_seed(3)
    index = ExactIndex(torch.randn(500, 16, generator=generator))
    queries = torch.randn(20, 16, generator=generator)
    exclude = [set(range(q, 500, 7)) for q in range(20)]
    batched = index.search(queries, 10, exclude)  # several rows: one torch product per batch
    for row in range(20):  # one row: the NumPy path of the HTTP server
        single = index.search(queries[row:row + 1], 10, exclude[row:row + 1])
        np.testing.assert_array_equal(single[0], batched[0][row:row + 1])
        np.testing.assert_allclose(single[1], batched[1][row:row + 1], rtol=1e-5)
        assert not set(single[0][0].tolist()) & exclude[row]
