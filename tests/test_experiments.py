"""Experiments you can trust (issue 6): protocols, statistics, self-describing runs, own data, errors.

Every test drives the real CLI on a small data set in the generic format that the test writes
(two communities of users, items whose text names their community).
"""
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from prismrec.cli import app
from conftest import write_own_catalogue

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def edit(config, **changes):
    """Rewrite a config file with top-level keys replaced (``data__options`` style for nested keys)."""
    raw = yaml.safe_load(config.read_text())
    for key, value in changes.items():
        target, *path = key.split("__")
        node = raw
        for part in [target, *path][:-1]:
            node = node[part]
        node[[target, *path][-1]] = value
    config.write_text(yaml.safe_dump(raw))
    return config


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr.replace("\n", " "), result.stderr
    return lines[0]


# ---------------------------------------------------------------- §1 protocols that cannot mislead
def test_cold_start_ranks_among_cold_items_by_default_and_says_so(tmp_path):
    own_catalogue = write_own_catalogue(tmp_path, n_items=80)
    edit(own_catalogue, split={"strategy": "cold_start_items", "options": {"cold_fraction": 0.5, "seed": 1}},
         models=[{"name": "mostpop"}])
    result = invoke("compare", own_catalogue, "--out", tmp_path / "cold")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cold" / "results.json").read_text())
    n_cold = len((tmp_path / "cold" / "split" / "cold_items.txt").read_text().split())
    assert report["protocol"] == f"full ranking over the {n_cold} cold test items"
    assert f"over the {n_cold} cold test items" in (tmp_path / "cold" / "results.md").read_text()
    topk = pd.read_csv(tmp_path / "cold" / "mostpop" / "topk.csv", dtype=str)
    cold = set((tmp_path / "cold" / "split" / "cold_items.txt").read_text().split())
    assert set(topk["item"]) <= cold  # only cold items are ranked
    edit(own_catalogue, evaluation={"ks": [5, 10], "topk": 10, "cold_start_candidates": "all"})
    assert invoke("compare", own_catalogue, "--out", tmp_path / "all").exit_code == 0
    everything = json.loads((tmp_path / "all" / "results.json").read_text())
    assert everything["protocol"] == "full ranking over all 80 items"


def test_k_larger_than_the_catalogue_is_an_error(own_catalogue, tmp_path):
    assert invoke("fit", own_catalogue, "--out", tmp_path / "run", "--model", "mostpop").exit_code == 0
    one_error_line(invoke("evaluate", tmp_path / "run", "--ks", "10,2000"), "k=2000", "30 items", "at most 30")
    edit(own_catalogue, evaluation={"ks": [10, 2000]})
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "o"), "k=2000", "at most 30")


def test_early_stopping_metric_beyond_a_small_catalogue_names_what_asked_for_it(own_catalogue, tmp_path):
    edit(own_catalogue, models=[{"name": "bpr", "params": {"early_stopping_metric": "ndcg@50"}}])
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "o"),
                   "early stopping asked for 'ndcg@50'", "early_stopping_metric", "only 30 items")


@pytest.mark.parametrize("value", ["-1", "0"])
def test_sampled_negatives_are_validated(own_catalogue, tmp_path, value):
    assert invoke("fit", own_catalogue, "--out", tmp_path / "run", "--model", "mostpop").exit_code == 0
    one_error_line(invoke("evaluate", tmp_path / "run", "--sampled-negatives", value), "sampled")


def test_sampled_negatives_covering_the_catalogue_are_labelled_full_ranking(own_catalogue, tmp_path):
    assert invoke("fit", own_catalogue, "--out", tmp_path / "run", "--model", "mostpop").exit_code == 0
    result = invoke("evaluate", tmp_path / "run", "--sampled-negatives", "5000", "--ks", "5")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["protocol"] == "full ranking over all 30 items"
    assert "recall@5" in printed["metrics"] and not any("sampled" in k for k in printed["metrics"])
    assert "this is full ranking" in result.stderr
    sampled = json.loads(invoke("evaluate", tmp_path / "run", "--sampled-negatives", "5", "--ks", "5").stdout)
    assert sampled["protocol"].startswith("sampled") and "recall@5/sampled5" in sampled["metrics"]


def test_a_batch_larger_than_the_training_set_is_capped_and_reported(own_catalogue, tmp_path):
    edit(own_catalogue, models=[{"name": "lightgcn", "params": {"epochs": 2, "embedding_size": 8}}])
    result = invoke("compare", own_catalogue, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: LightGCN: batch_size 8192 capped at \d+ .* at least 10 steps", result.stderr)


# ---------------------------------------------------------------- §2 statistics a reviewer accepts
def test_seeds_rerun_split_and_models_and_report_mean_std_and_p_values(own_catalogue, tmp_path):
    out = tmp_path / "seeds"
    edit(own_catalogue, models=[{"name": "mostpop"},
                                {"name": "bpr", "params": {"epochs": 40, "factors": 16, "learning_rate": 0.05}}])
    result = invoke("compare", own_catalogue, "--out", out, "--seeds", "3")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert report["seeds"] == [3, 4, 5]  # the split's seed (3), then the next two
    bpr = report["models"]["bpr"]
    per_seed = [bpr["per_seed"][str(s)]["metrics"]["ndcg@10"] for s in (3, 4, 5)]
    assert bpr["metrics"]["ndcg@10"] == pytest.approx(np.mean(per_seed))
    assert bpr["metrics_std"]["ndcg@10"] == pytest.approx(np.std(per_seed, ddof=1))
    assert len(set(per_seed)) == 3  # the splits (and models) really differ per seed
    splits = [pd.read_csv(out / f"seed-{s}" / "split" / "test.csv") for s in (3, 4, 5)]
    assert not splits[0].equals(splits[1])
    test = bpr["paired_t_test_vs_mostpop"]["ndcg@10"]
    assert test["t_statistic"] > 0 and test["direction"] == 1 and test["p_holm"] < 0.05
    markdown = (out / "results.md").read_text()
    assert "±" in markdown and f"p={test['p_holm']:.2g}" in markdown and "3, 4, 5" in markdown
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 3


def test_config_names_the_reference_and_all_pairs(own_catalogue, tmp_path):
    edit(own_catalogue, seeds=[7, 8], evaluation={"ks": [5, 10], "topk": 10, "reference": "bpr", "all_pairs": True},
         models=[{"name": "mostpop"}, {"name": "bpr", "params": {"epochs": 5, "factors": 8}},
                 {"name": "lightgcn", "params": {"epochs": 2, "embedding_size": 8}}])
    assert invoke("compare", own_catalogue, "--out", tmp_path / "o").exit_code == 0
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    assert report["reference_model"] == "bpr" and report["seeds"] == [7, 8]
    assert "paired_t_test_vs_bpr" in report["models"]["mostpop"]
    assert {(p["reference"], p["model"]) for p in report["pairwise"]} == {
        ("bpr", "mostpop"), ("bpr", "lightgcn"), ("mostpop", "lightgcn")}
    edit(own_catalogue, evaluation={"reference": "nobody"})
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "x"), "evaluation.reference", "'nobody'")


def test_best_epoch_counts_from_one(own_catalogue, tmp_path):
    edit(own_catalogue, models=[{"name": "bpr", "params": {"epochs": 3, "factors": 8, "patience": 10}}])
    assert invoke("compare", own_catalogue, "--out", tmp_path / "o").exit_code == 0
    entry = json.loads((tmp_path / "o" / "results.json").read_text())["models"]["bpr"]
    assert 1 <= entry["best_epoch"][0] <= 3


# ---------------------------------------------------------------- §3 runs that describe themselves
def test_results_record_provenance_config_hyperparameters_scores_and_integers(own_catalogue, tmp_path):
    out = tmp_path / "o"
    assert invoke("compare", own_catalogue, "--out", out).exit_code == 0
    report = json.loads((out / "results.json").read_text())
    provenance = report["provenance"]
    assert provenance["prismrec_version"] == "0.1.0" and provenance["python"].startswith("3.")
    assert provenance["torch"].startswith("2.13") and re.match(r"\d{4}-\d\d-\d\dT", provenance["date"])
    assert "git_commit" in provenance
    models = {m["name"]: m for m in report["config"]["models"]}
    assert models["bpr"]["params"]["factors"] == 8 and models["bpr"]["params"]["patience"] == 5  # defaults too
    assert report["config"]["split"]["options"]["seed"] == 3
    assert "factors=8" in (out / "results.md").read_text()
    topk = pd.read_csv(out / "bpr" / "topk.csv")
    assert list(topk.columns) == ["user", "rank", "item", "score"]
    assert (topk.groupby("user")["score"].diff().dropna() <= 0).all()  # scores fall with the rank
    train_text = (out / "split" / "train.csv").read_text().splitlines()
    assert train_text[0] == "user,item,timestamp" and re.fullmatch(r"u\d+,i\d{3},\d+", train_text[1])


# ---------------------------------------------------------------- §4 your own data in one step
def test_relative_paths_resolve_against_the_config_folder(own_catalogue, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "data")  # anywhere but the config's folder
    assert invoke("compare", own_catalogue, "--out", tmp_path / "o").exit_code == 0
    edit(own_catalogue, data__options__items_path="../data/missing.csv")
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "x"), "missing.csv")


def test_encode_and_align_take_the_run_config(tmp_path):
    config = write_own_catalogue(tmp_path, with_images=True)
    raw = yaml.safe_load(config.read_text())
    raw["features"] = {"words": {"encoder": "text:minilm", "options": {"template": "{title}. {description}"}}}
    config.write_text(yaml.safe_dump(raw))
    result = invoke("encode", "--config", config, "--feature", "words", "--out", tmp_path / "words.npy")
    assert result.exit_code == 0, result.output
    assert "30 items" in result.stdout and np.load(tmp_path / "words.npy").shape == (30, 384)
    assert (config.parent / "cache").is_dir()  # the config's feature_cache, relative to its folder
    result = invoke("align", "--config", config, "--out", tmp_path / "align", "--epochs", "1",
                    "--batch-size", "8", "--template", "{title}")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "align" / "alignment_report.json").is_file()


def test_a_config_trains_its_aligned_encoder_as_part_of_the_run(tmp_path):
    config = write_own_catalogue(tmp_path, with_images=True)
    raw = yaml.safe_load(config.read_text())
    raw["features"] = {"aligned": {"encoder": "align", "train": {"epochs": 1, "batch_size": 8,
                                                                 "text_template": "{title}"}}}
    raw["models"] = [{"name": "vbpr", "features": ["aligned"], "params": {"epochs": 2}}]
    config.write_text(yaml.safe_dump(raw))
    result = invoke("compare", config, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    feature = report["models"]["vbpr"]["features"]["aligned"]
    assert feature["encoder"].startswith("align:") and str(config.parent / "cache" / "align") in feature["encoder"]
    assert feature["encoder_id"].startswith("align")


def test_unused_features_warn_and_missing_features_fail_before_any_training(own_catalogue, tmp_path):
    raw = yaml.safe_load(own_catalogue.read_text())
    raw["features"] = {"words": {"encoder": "text:minilm"}}
    raw["models"] = [{"name": "bpr", "features": ["words"], "params": {"epochs": 2}}]
    own_catalogue.write_text(yaml.safe_dump(raw))
    result = invoke("compare", own_catalogue, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "warning: bpr (bpr) does not use item feature(s) ['words']" in result.stderr
    raw["models"] = [{"name": "bpr", "params": {"epochs": 2}}, {"name": "vbpr", "params": {"epochs": 2}}]
    own_catalogue.write_text(yaml.safe_dump(raw))
    result = invoke("compare", own_catalogue, "--out", tmp_path / "p")
    one_error_line(result, "models[1] (vbpr) needs item feature(s) ['image']")
    assert "fitting" not in result.stderr  # no model trained


def test_encode_summary_counts_each_item_once_and_names_items_file_lines(tmp_path):
    config = write_own_catalogue(tmp_path, n_items=18, with_images=True)
    items = pd.read_csv(tmp_path / "data" / "items.csv")
    (tmp_path / "data" / "images" / "i004.png").write_bytes(b"not a picture")  # line 6 of items.csv
    for name in ("i001", "i002", "i003"):
        (tmp_path / "data" / "images" / f"{name}.png").unlink()  # 3 items without an image
    assert len(items) == 18
    result = invoke("encode", "--config", config, "--encoder", "image:efficientnet-lite0")
    assert result.exit_code == 0, result.output
    assert "18 items: 0 from the cache, 14 encoded, 3 without content, 1 failed" in result.stdout
    assert "item i004 (" in result.stdout and "items.csv line 6," in result.stdout


# ---------------------------------------------------------------- §5 errors for humans
@pytest.mark.parametrize("change, needles", [
    ({"data__options__user_column": "user_id"}, ["data.options.user_column", "loader 'generic'", "user_col"]),
    ({"split__options__seeed": 1}, ["split.options.seeed", "random_per_user", "ratios, seed"]),
    ({"evaluation": {"ks": "ten"}}, ["evaluation.ks", "positive integers", "'ten'"]),
    ({"evaluation": {"ks": ["ten"]}}, ["evaluation.ks", "positive integers", "'ten'"]),
    ({"models": [{"name": "bpr", "params": {"factors": "eight"}}]},
     ["models[0].params.factors must be an integer", "'eight'"]),
    ({"models": [{"name": "bpr", "params": {"factorz": 8}}]}, ["models[0].params.factorz", "factors"]),
    ({"seeds": "three"}, ["seeds must be", "'three'"]),
])
def test_config_typos_and_wrong_types_name_the_key_and_what_is_accepted(own_catalogue, tmp_path, change, needles):
    edit(own_catalogue, **change)
    line = one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "o"), *needles)
    assert "run.yaml" in line


def test_encoder_option_typo_names_the_feature_and_the_options(own_catalogue, tmp_path):
    raw = yaml.safe_load(own_catalogue.read_text())
    raw["features"] = {"words": {"encoder": "text:minilm", "options": {"templat": "{title}"}}}
    raw["models"] = [{"name": "vbpr", "features": ["words"]}]
    own_catalogue.write_text(yaml.safe_dump(raw))
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "o"), "features.words.options",
                   "no option 'templat'", "template")


def test_empty_ratings_file_names_the_file(own_catalogue, tmp_path):
    (tmp_path / "data" / "ratings.csv").write_text("")
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "o"), "ratings.csv", "empty")


def test_out_pointing_at_a_file_is_a_clear_error(own_catalogue, tmp_path):
    (tmp_path / "taken").write_text("x")
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "taken"), "is a file")


def test_a_bad_date_is_reported_at_its_own_line(own_catalogue, tmp_path):
    path = tmp_path / "data" / "ratings.csv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[2], "yesterday")  # file line 6
    path.write_text("\n".join(lines) + "\n")
    one_error_line(invoke("compare", own_catalogue, "--out", tmp_path / "o"), "ratings.csv, line 6", "'yesterday'",
                   "ISO date")


# ---------------------------------------------------------------- §6 a quieter, clearer first run
def test_version_and_models_listing():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == "prismrec 0.1.0"
    listing = invoke("models").stdout
    assert "vbpr: VBPR (He & McAuley 2016)" in listing or "vbpr: Visual BPR" in listing
    assert "named item feature arrays (feature_names)" in listing and "factors=32" in listing
    assert "ids only" in listing


def test_stdout_holds_results_and_logs_go_to_stderr(own_catalogue, tmp_path):
    result = invoke("compare", own_catalogue, "--out", tmp_path / "o", "--progress")
    assert result.exit_code == 0
    assert "epoch 1/10" in result.stderr and "epoch" not in result.stdout and "fitting" not in result.stdout
    assert "ndcg@10" in result.stdout


def test_data_warnings_are_one_clean_line(own_catalogue, tmp_path):
    path = tmp_path / "data" / "ratings.csv"
    path.write_text(path.read_text() + ",i001,2024-01-02,4\n")  # a row without a user id
    result = invoke("compare", own_catalogue, "--out", tmp_path / "o")
    assert result.exit_code == 0
    warning_lines = [line for line in result.stderr.splitlines() if "without a 'user_id'" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: ")
    assert "warnings.warn" not in result.stderr and "DataWarning" not in result.stderr


def test_help_texts_name_the_files_really_written():
    wide = {"COLUMNS": "250"}  # help panels wrap at the terminal's width
    assert "run.json" in runner.invoke(app, ["fit", "--help"], env=wide).stdout
    assert "alignment_report.json" in runner.invoke(app, ["align", "--help"], env=wide).stdout


def test_the_documented_generic_config_runs_as_written(tmp_path):
    write_own_catalogue(tmp_path, with_images=True)
    text = (__import__("pathlib").Path(__file__).parents[1] / "docs" / "data_formats.md").read_text()
    example = re.search(r"### A complete run config.*?```yaml\n(.*?)```", text, re.S).group(1)
    config = tmp_path / "project" / "run.yaml"
    config.write_text(example.replace("epochs: 20", "epochs: 2"))
    result = invoke("compare", config, "--out", tmp_path / "mine")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "mine" / "results.json").read_text())
    assert report["seeds"] == [3, 4] and report["reference_model"] == "mostpop"
    assert set(report["models"]["vbpr_content"]["features"]) == {"words", "pictures"}


def test_example_configs_parse_and_readme_says_how_to_run_prismrec():
    from pathlib import Path

    from prismrec.config import load_config

    root = Path(__file__).parents[1]
    from prismrec.study import load_study

    for config in sorted((root / "configs").glob("*.yaml")):
        if config.name.endswith("study.yaml") or "\nencoders:" in config.read_text():  # a study (lmm_paradigms too)
            assert load_study(config).scenarios  # a study: every scenario's run is validated
            continue
        cfg = load_config(config)
        assert cfg.data.path is None or "shared/data" in cfg.data.path
    readme, makefile = (root / "README.md").read_text(), (root / "Makefile").read_text()
    assert ".venv/bin/prismrec" in readme and "source .venv/bin/activate" in readme
    assert "`pytest.ini`" not in readme  # no such file: the options live in pyproject.toml
    assert ".venv/bin/prismrec" in makefile.split("demo:")[1].split("\n\n")[0]
    assert "posters" not in (root / "configs" / "ml100k.yaml").read_text().split("name:")[0].lower()
    pyproject = (root / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', pyproject, re.M)  # SPDX string: no setuptools deprecation


def test_progress_is_off_when_stderr_is_not_a_terminal(own_catalogue, tmp_path):
    result = invoke("compare", own_catalogue, "--out", tmp_path / "o")
    assert result.exit_code == 0 and "epoch 1/" not in result.stderr


def test_mmrec_protocol_is_an_explicit_labelled_option(own_catalogue, tmp_path):
    edit(own_catalogue, evaluation={"ks": [5, 10], "topk": 10, "mask_valid": False})
    assert invoke("compare", own_catalogue, "--out", tmp_path / "m").exit_code == 0
    report = json.loads((tmp_path / "m" / "results.json").read_text())
    assert report["protocol"].endswith("only train items masked, valid items rankable (MMRec's protocol)")
    assert report["masked_at_test"] == ["train"]
    assert "each user's train items" in (tmp_path / "m" / "results.md").read_text()
    valid = pd.read_csv(tmp_path / "m" / "split" / "valid.csv", dtype=str)
    topk = pd.read_csv(tmp_path / "m" / "bpr" / "topk.csv", dtype=str)
    shared = topk.merge(valid, on=["user", "item"])
    assert len(shared) > 0  # valid items can be recommended under this protocol, as in MMRec


def test_encode_without_a_config_checks_the_loader_options(own_catalogue, tmp_path):
    result = invoke("encode", "--data", "generic", "--path", tmp_path / "data" / "ratings.csv",
                    "--data-option", "user_column=user_id", "--encoder", "text:minilm")
    one_error_line(result, "command line", "data.options.user_column", "user_col")
