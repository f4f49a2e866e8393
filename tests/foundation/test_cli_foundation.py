"""`prismrec foundation train | evaluate | explanations` and `prismrec explain` on tiny data."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from prismrec.cli import app
from prismrec.foundation.explanation import NearestReview, score_explanations, split_reviews
from conftest import make_checkerboard
from foundation_parts import one_thread  # noqa: F401 (fixture)

runner = CliRunner()
TINY_MODEL = ("{preset: tiny, epochs: 2, learning_rate: 0.01, batch_size: 32, n_clusters: 2, leaf_size: 8, "
              "beam_size: 0, validation_users: 0, tokenizer_vocab: 100, direct_share: 0.3, direct_candidates: 4}")


def write_config(tmp_path):
    make_checkerboard(n_users=30, n_items=16, seed=1).to_frame().to_csv(tmp_path / "ratings.csv", index=False)
    config = tmp_path / "run.yaml"
    config.write_text(
        "name: tiny\n"
        f"data: {{loader: generic, path: {tmp_path / 'ratings.csv'}, options: {{time_col: timestamp}}}}\n"
        "split: {strategy: leave_one_out}\n"
        "evaluation: {ks: [5, 10], metrics: [hit, ndcg]}\n"
        f"models: [{{name: fm, model: foundation, params: {TINY_MODEL}}}]\n")
    return config


def test_train_checkpoints_resumes_and_evaluate_rewrites_results(tmp_path):
    config, run = write_config(tmp_path), tmp_path / "run"
    result = runner.invoke(app, ["foundation", "train", str(config), "--out", str(run), "--no-progress",
                                 "--sampled-negatives", "5"])
    assert result.exit_code == 0, result.output
    assert (run / "checkpoint" / "checkpoint.pt").is_file() and (run / "model" / "config.json").is_file()
    report = json.loads((run / "results.json").read_text())
    entry = report["models"]["fm"]
    assert "hit@10" in entry["metrics"] and "hit@10/sampled5" in entry["sampled_metrics"]
    assert "collaborative ids" in (run / "results.md").read_text()
    # reproducible from the file: the full config with its seed, the version, commit and dates
    assert report["config"]["source"] == str(config) and report["config"]["seed"] == 0
    assert report["config"]["params"]["preset"] == "tiny" and report["config"]["split"]["strategy"] == "leave_one_out"
    assert {"prismrec_version", "git_commit", "date", "finished"} <= set(report["provenance"])
    assert set(report["direct"]["summary"]) == {"hit@5/sampled5", "ndcg@5/sampled5"}  # the direct task, VIP5's protocol, labelled
    assert "direct task, sampled: 1 positive + 5" in (run / "results.md").read_text()
    again = runner.invoke(app, ["foundation", "train", str(config), "--out", str(run), "--no-progress",
                                 "--sampled-negatives", "5"])
    assert again.exit_code == 0, again.output  # resumed after the last epoch: nothing left to train
    assert json.loads((run / "results.json").read_text())["models"]["fm"]["metrics"] == entry["metrics"]
    evaluated = runner.invoke(app, ["foundation", "evaluate", str(run), "--ks", "5,10", "--sampled-negatives", "5"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["metrics"]["hit@10"] == entry["metrics"]["hit@10"]
    zero_shot = runner.invoke(app, ["foundation", "evaluate", str(run), "--sampled-negatives", "5",
                                    "--template", "sequential-5"])  # a held-out template
    assert zero_shot.exit_code == 0, zero_shot.output
    rewritten = json.loads((run / "results.json").read_text())
    assert rewritten["template"] == "sequential-5" and rewritten["config"]["template"] == "sequential-5"
    assert rewritten["config"]["trained_with"]["params"]["preset"] == "tiny" and "date" in rewritten["provenance"]
    missing = runner.invoke(app, ["foundation", "evaluate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no trained model here" in missing.output


def write_reviews(path, n_users=24, n_items=6):
    """Items of the first half get 'great tone', the others 'cheap strings'."""
    rng = np.random.default_rng(0)
    with gzip.open(path, "wt") as handle:
        for user in range(n_users):
            for item in rng.choice(n_items, 5, replace=False):
                summary = "great tone" if item < n_items // 2 else "cheap strings"
                handle.write(json.dumps({"reviewerID": f"U{user}", "asin": f"I{item}", "overall": 5.0,
                                         "unixReviewTime": 1000 + int(item), "summary": summary,
                                         "reviewText": "text"}) + "\n")


def test_explanations_are_trained_scored_and_explained(tmp_path):
    reviews, run = tmp_path / "reviews.json.gz", tmp_path / "explain"
    write_reviews(reviews)
    result = runner.invoke(app, ["foundation", "explanations", "--out", str(run), "--reviews", str(reviews),
                                 "--preset", "tiny", "--epochs", "30", "--learning-rate", "0.01"])
    assert result.exit_code == 0, result.output
    written = json.loads((run / "results.json").read_text())
    scores = written["scores"]
    assert written["config"]["generator"]["epochs"] == 30 and written["config"]["seed"] == 0
    assert "git_commit" in written["provenance"] and "finished" in written["provenance"]
    assert scores["foundation (T5, trained templates)"]["rougeL"] > 90  # it learned each item's phrase
    assert scores["foundation (T5, trained templates)"]["distinct_outputs"] == 2  # both phrases, per item
    constant = scores["most common training summary (constant baseline)"]
    assert constant["distinct_outputs"] == 1  # one phrase for all: exact on that phrase's reviews only
    assert 0 < constant["rougeL"] < scores["foundation (T5, trained templates)"]["rougeL"] - 50
    frame = pd.read_csv(run / "explanations.csv")
    assert {"user", "item", "reference", "generated", "retrieved", "constant"} <= set(frame.columns)
    said = runner.invoke(app, ["explain", str(run), "--user", "U1", "--item", "I2"])
    assert said.exit_code == 0 and said.stdout.strip() == "great tone"  # I2 is in the first half
    unknown = runner.invoke(app, ["explain", str(run), "--user", "nobody", "--item", "I2"])
    assert unknown.exit_code == 2 and "unknown user 'nobody'" in unknown.output
    unknown = runner.invoke(app, ["explain", str(run), "--user", "U1", "--item", "no-such-item"])
    assert unknown.exit_code == 2 and "unknown item 'no-such-item'" in unknown.output


def test_scores_and_the_retrieval_baseline_have_known_answers():
    perfect = score_explanations(["great tone", "cheap strings"], ["Great tone", "cheap strings"])
    assert perfect["rouge1"] == 100.0 and round(perfect["bleu4"]) == 0  # two-word texts have no 4-grams
    assert score_explanations(["a b c d e"], ["a b c d e"])["bleu4"] == pytest.approx(100.0)
    assert score_explanations(["x"], ["y"])["rougeL"] == 0.0
    train = pd.DataFrame({"user": ["a", "a", "b", "b", "c"], "item": ["x", "y", "x", "z", "y"],
                          "summary": ["a on x", "a on y", "b on x", "b on z", "c on y"]})
    baseline = NearestReview().fit(train)
    assert baseline.predict(["c"], ["x"]) == ["a on x"]  # a shares item y with c, b shares nothing
    assert baseline.predict(["c"], ["w"]) == ["c on y"]  # unknown item: the user's latest summary
    split = split_reviews(pd.DataFrame({"user": ["u"] * 20, "item": ["i"] * 20, "summary": ["ok"] * 19 + [None]}))
    assert len(split.train) == 15 and split.dropped == 0


def test_compare_ranks_the_foundation_model_beside_sasrec(tmp_path):
    config = write_config(tmp_path)
    text = config.read_text().replace(
        "models: [", "models: [{name: sasrec, params: {hidden_size: 8, epochs: 3, max_length: 8}}, ").replace(
        "metrics: [hit, ndcg]}", "metrics: [hit, ndcg], topk: 10}")
    config.write_text(text)
    result = runner.invoke(app, ["compare", str(config), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert {"sasrec", "fm"} <= set(report["models"])
