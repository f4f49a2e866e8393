"""End-to-end CLI runs on a tiny generic data set written by the test."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from prismrec.cli import app
from conftest import make_checkerboard

runner = CliRunner()


def write_run(tmp_path, models):
    data = make_checkerboard(n_users=40, n_items=30, seed=1)
    data.to_frame().to_csv(tmp_path / "ratings.csv", index=False)
    config = tmp_path / "run.yaml"
    config.write_text(
        "name: tiny\n"
        f"data: {{loader: generic, path: {tmp_path / 'ratings.csv'}, options: {{time_col: timestamp}}}}\n"
        "split: {strategy: random_per_user, options: {ratios: [0.7, 0.1, 0.2], seed: 3}}\n"
        "evaluation: {ks: [5, 10], topk: 10}\n"
        f"models: {models}\n"
    )
    return config


def recall_from_files(out, model, k):
    """Recompute Recall@k from the written split and top-k CSVs alone, as another tool would."""
    test = pd.read_csv(out / "split" / "test.csv", dtype=str)
    topk = pd.read_csv(out / model / "topk.csv", dtype={"user": str, "item": str})
    relevant = test.groupby("user")["item"].apply(set)
    recalls = []
    for user, items in relevant.items():
        top = set(topk[(topk.user == user) & (topk["rank"] <= k)]["item"])
        recalls.append(len(top & items) / len(items))
    return float(np.mean(recalls))


def test_compare_writes_results_split_and_topk_that_reproduce_the_metrics(tmp_path):
    config = write_run(tmp_path, "[{name: mostpop}, {name: bpr, params: {epochs: 15, factors: 8, seed: 0}}]")
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", str(config), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert list(report["models"]) == ["mostpop", "bpr"]
    assert "paired_t_test_vs_mostpop" in report["models"]["bpr"]
    assert "| bpr |" in (out / "results.md").read_text()
    for name in ("train", "valid", "test"):
        assert (out / "split" / f"{name}.csv").is_file()
    for model in ("mostpop", "bpr"):
        assert report["models"][model]["metrics"]["recall@10"] == pytest.approx(recall_from_files(out, model, 10))
    # the checkerboard has a known structure: BPR must beat popularity clearly
    assert report["models"]["bpr"]["metrics"]["ndcg@10"] > report["models"]["mostpop"]["metrics"]["ndcg@10"]


def test_fit_then_evaluate_round_trip(tmp_path):
    config = write_run(tmp_path, "[{name: bpr, params: {epochs: 5, factors: 8, seed: 0}}]")
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(config), "--out", str(run_dir), "--no-progress"]).exit_code == 0
    compare_out = tmp_path / "cmp"
    assert runner.invoke(app, ["compare", str(config), "--out", str(compare_out), "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["evaluate", str(run_dir), "--ks", "5,10"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    expected = json.loads((compare_out / "results.json").read_text())["models"]["bpr"]["metrics"]
    assert metrics["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-6)


def test_unknown_model_in_config_is_one_clear_line(tmp_path):
    config = write_run(tmp_path, "[{name: deepmagic}]")
    result = runner.invoke(app, ["compare", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown model 'deepmagic'" in result.output and "Traceback" not in result.output


def test_python_dash_m_prismrec_runs_the_cli():
    import subprocess
    import sys

    from prismrec import __version__

    done = subprocess.run([sys.executable, "-m", "prismrec", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"prismrec {__version__}"
