import numpy as np
import pytest
from scipy import stats

from prismrec.evaluation.documents import report_html, results_markdown
from prismrec.evaluation.evaluator import EvaluationResult
from prismrec.evaluation.report import ModelRun, build_report, markdown_table
from prismrec.evaluation.significance import holm_adjust


def result(values, users=None):
    values = np.asarray(values, dtype=np.float32)
    users = np.arange(len(values)) if users is None else np.asarray(users)
    return EvaluationResult(users, {"ndcg@10": values}, {"ndcg@10": float(values.mean())}, np.zeros((len(values), 1)))


def run(name, values):
    return ModelRun.single(name, result(values))


def rows_of(table):
    return {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| ") and "model" not in line}


def three_models():
    rng = np.random.default_rng(0)
    base = rng.random(200)
    return [run("base", base), run("better", base + 0.05 + rng.normal(0, 0.01, 200)),
            run("worse", base - 0.05 + rng.normal(0, 0.01, 200)), run("same", base + rng.normal(0, 0.01, 200))]


def test_table_marks_significant_gains_and_losses_with_direction():
    report = build_report(three_models())
    rows = rows_of(markdown_table(report).split("p-values against")[0])
    assert "▲" in rows["better"] and "▼" not in rows["better"]
    assert "▼" in rows["worse"]
    assert "▲" not in rows["same"] and "▼" not in rows["same"]
    assert report["models"]["worse"]["paired_t_test_vs_base"]["ndcg@10"]["p_value"] < 0.05


def test_t_statistic_is_positive_when_the_model_is_better():
    report = build_report(three_models())
    tests = {m: report["models"][m]["paired_t_test_vs_base"]["ndcg@10"] for m in ("better", "worse")}
    assert tests["better"]["t_statistic"] > 0 and tests["better"]["direction"] == 1
    assert tests["worse"]["t_statistic"] < 0 and tests["worse"]["direction"] == -1


def test_p_values_are_holm_corrected_over_the_comparisons_and_shown_in_the_table():
    runs = three_models()
    report = build_report(runs)
    raw = [report["models"][m]["paired_t_test_vs_base"]["ndcg@10"]["p_value"] for m in ("better", "worse", "same")]
    expected = stats.ttest_rel(runs[3].results[0].per_user["ndcg@10"], runs[0].results[0].per_user["ndcg@10"])
    assert raw[2] == pytest.approx(expected.pvalue)
    holm = [report["models"][m]["paired_t_test_vs_base"]["ndcg@10"]["p_holm"] for m in ("better", "worse", "same")]
    assert holm == pytest.approx(holm_adjust(raw).tolist())
    p_rows = rows_of(markdown_table(report).split("p-values against")[1])
    assert p_rows["base"].count("reference") == 1
    assert f"p={holm[2]:.2g}" in p_rows["same"] and "(t=" in p_rows["same"]


def test_holm_hand_computed():
    # sorted p: 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.03, 0.06, 0.06
    assert holm_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])  # 0.5*2 capped at 1; monotone


def test_reference_and_all_pairs():
    runs = three_models()
    report = build_report(runs, reference="better", all_pairs=True)
    assert report["reference_model"] == "better" and "paired_t_test_vs_better" in report["models"]["base"]
    assert len(report["pairwise"]) == 6  # 4 models: 3 against the reference + 3 other pairs
    holm = [p["tests"]["ndcg@10"]["p_holm"] for p in report["pairwise"]]
    raw = [p["tests"]["ndcg@10"]["p_value"] for p in report["pairwise"]]
    assert holm == pytest.approx(holm_adjust(raw).tolist())
    with pytest.raises(ValueError, match="not one of"):
        build_report(runs, reference="nobody")


def test_seeds_give_mean_and_sample_std_and_pair_seed_averaged_users():
    a = ModelRun("a", {0: result([0.1, 0.2, 0.3]), 1: result([0.3, 0.4, 0.5])})
    b = ModelRun("b", {0: result([0.2, 0.4, 0.6]), 1: result([0.4, 0.6, 0.9], users=[0, 1, 2])})
    report = build_report([a, b])
    assert report["models"]["a"]["metrics"]["ndcg@10"] == pytest.approx(0.3)
    assert report["models"]["a"]["metrics_std"]["ndcg@10"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    users, averaged = b.seed_averaged("ndcg@10")
    assert averaged == pytest.approx([0.3, 0.5, 0.75])
    test = report["models"]["b"]["paired_t_test_vs_a"]["ndcg@10"]
    assert test["p_value"] == pytest.approx(stats.ttest_rel([0.3, 0.5, 0.75], [0.2, 0.3, 0.4]).pvalue, rel=1e-5)
    assert "±" in markdown_table(report) and "Mean ± std over 2 seeds" in markdown_table(report)


def test_documents_show_hyperparameters_features_provenance_and_embed_plots():
    runs = three_models()
    runs[1].info = {"model": "vbpr", "params": {"factors": 8}, "features": {"poster": {"encoder_id": "image:x@1"}},
                    "breakdown": {g: {"recall": 0.5, "users": 3, "test_interactions": 4} for g in ("cold", "tail", "head")}}
    context = {"name": "tiny", "provenance": {"prismrec_version": "0.1.0", "git_commit": {"commit": "abc" * 10,
               "dirty": False}, "python": "3.11", "torch": "2.13", "numpy": "2", "date": "2026-12-01", "command": "x"}}
    report = build_report(runs, context=context)
    markdown = results_markdown(report)
    assert "factors=8" in markdown and "poster (image:x@1)" in markdown and "commit abcabcabca" in markdown
    assert "| better | 0.5000 | 0.5000 | 0.5000 |" in markdown
    page = report_html(report, {r.name: r.seed_averaged("ndcg@10")[1] for r in runs})
    assert page.count("data:image/png;base64,") == 3 and "<script" not in page and "http" not in page


def test_recall_by_popularity_hand_computed():
    from prismrec.data import IdMap, Interactions
    from prismrec.evaluation.breakdown import recall_by_popularity

    # item 0 head (3 train rows), item 1 tail (1 row), items 2 and 3 cold
    train = Interactions(IdMap(range(3)), IdMap(range(4)), [0, 1, 2, 0], [0, 0, 0, 1])
    test = Interactions(IdMap(range(3)), IdMap(range(4)), [1, 1, 2, 2], [1, 2, 2, 3])
    topk = np.array([[1, 3], [2, 0]])  # users 1 and 2, k=2
    out = recall_by_popularity(topk, np.array([1, 2]), test, train, 2)
    assert out["tail"] == {"recall": 1.0, "users": 1, "test_interactions": 1}
    # cold: user 1 finds 0 of {2}, user 2 finds 1 of {2, 3} -> mean(0, 0.5)
    assert out["cold"]["recall"] == pytest.approx(0.25) and out["cold"]["users"] == 2
    assert out["head"] == {"recall": None, "users": 0, "test_interactions": 0}
