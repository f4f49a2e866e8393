"""`prismrec fit --out RUN` writes a bundle; `prismrec recommend` reads it (one user, or all to a file)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import make_checkerboard, write_own_catalogue
from prismrec.cli import app
from prismrec.serving.bundle import load_bundle

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    make_checkerboard(n_users=30, n_items=20, seed=2).to_frame().to_csv(folder / "ratings.csv", index=False)
    config = folder / "run.yaml"
    config.write_text(f"data: {{loader: generic, path: {folder / 'ratings.csv'}, options: {{time_col: timestamp}}}}\n"
                      "split: {strategy: random_per_user, options: {ratios: [0.7, 0.1, 0.2], seed: 3}}\n"
                      "models: [{name: bpr, params: {factors: 8, epochs: 20, seed: 0}}]\n")
    result = runner.invoke(app, ["fit", str(config), "--out", str(folder / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_fit_writes_a_bundle_that_round_trips(run):
    bundle = load_bundle(run)
    assert type(bundle.model).__name__ == "BPR" and bundle.info["model_name"] == "bpr"
    split_train = pd.read_csv(run / "split" / "train.csv", dtype=str)
    assert len(bundle.train) == len(split_train)
    assert set(zip(bundle.users.to_raw(bundle.train.user_index), bundle.items.to_raw(bundle.train.item_index))) \
        == set(zip(split_train.user, split_train.item))
    assert bundle.features == [] and bundle.catalog is None


def test_recommend_one_user_prints_a_table_of_unseen_items(run):
    result = runner.invoke(app, ["recommend", str(run), "--user", "u0", "-k", "3"])
    assert result.exit_code == 0, result.output
    bundle = load_bundle(run)
    items, _ = bundle.model.recommend(bundle.users.to_index(["u0"]), 3, exclude=bundle.train)
    assert "top 3 for user u0" in result.output
    for item in bundle.items.to_raw(items[0]):
        assert f" {item} " in result.output
    unknown = runner.invoke(app, ["recommend", str(run), "--user", "ghost"])
    assert unknown.exit_code == 2 and "unknown user 'ghost'" in unknown.output


def test_recommend_all_writes_every_users_top_k(run, tmp_path):
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["recommend", str(run), "--all", "-k", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    bundle = load_bundle(run)
    assert len(frame) == 4 * len(bundle.users) and frame["rank"].tolist()[:4] == [1, 2, 3, 4]
    items, scores = bundle.model.recommend(np.arange(len(bundle.users)), 4, exclude=bundle.train)
    assert frame["item"].tolist() == bundle.items.to_raw(items.reshape(-1)).tolist()
    np.testing.assert_allclose(frame["score"].to_numpy(), scores.reshape(-1), rtol=1e-6)
    seen = set(zip(bundle.users.to_raw(bundle.train.user_index), bundle.items.to_raw(bundle.train.item_index)))
    assert not seen & set(zip(frame.user, frame.item))
    both = runner.invoke(app, ["recommend", str(run), "--all", "--user", "u0"])
    assert both.exit_code == 2 and "exactly one of --user U or --all" in both.output


def test_compare_save_models_writes_bundles_that_recommend_the_runs_top_k(tmp_path):
    """`compare --save-models` on a practitioner's catalogue, two seeds: models/<name>/ holds the model
    fitted on the first seed's split, and `recommend --all` from it reproduces that seed's topk.csv."""
    config = write_own_catalogue(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["evaluation"]["mask_valid"] = False  # topk.csv then masks exactly what the bundle excludes (train)
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(config), "--out", str(out), "--seeds", "2", "--save-models",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "models").iterdir()) == ["bpr", "mostpop"]
    bundle = load_bundle(out / "models" / "bpr")
    assert bundle.info["seed"] == 3 and bundle.info["model_name"] == "bpr"
    split_train = pd.read_csv(out / "seed-3" / "split" / "train.csv", dtype=str)
    assert set(zip(bundle.users.to_raw(bundle.train.user_index), bundle.items.to_raw(bundle.train.item_index))) \
        == set(zip(split_train.user, split_train.item))
    titles = dict(zip(bundle.catalog.item_ids, bundle.catalog.text["title"]))
    assert titles["i000"] == "red thing 0" and titles["i029"] == "blue thing 29"
    recs = tmp_path / "recs.csv"
    done = runner.invoke(app, ["recommend", str(out / "models" / "bpr"), "--all", "-k", "10", "--out", str(recs)])
    assert done.exit_code == 0, done.output
    topk = pd.read_csv(out / "seed-3" / "bpr" / "topk.csv", dtype={"user": str, "item": str})
    served = pd.read_csv(recs, dtype={"user": str, "item": str})
    served = served[served.user.isin(set(topk.user))].reset_index(drop=True)
    assert len(topk) > 0 and served[["user", "rank", "item"]].equals(topk[["user", "rank", "item"]])
    np.testing.assert_allclose(served["score"], topk["score"], rtol=1e-5)
    user = topk.user.iloc[0]
    table = runner.invoke(app, ["recommend", str(out / "models" / "bpr"), "--user", user, "-k", "10"])
    for item in topk[topk.user == user].item:
        assert f" {item} " in table.output
