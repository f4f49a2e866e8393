"""prismrec study: a grid of scenarios (warm, cold-start, sparsity) reported together."""
import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from prismrec.cli import app
from prismrec.config import ConfigError
from prismrec.study import parse_study

runner = CliRunner()


def study_file(config, tmp_path, **extra):
    run = yaml.safe_load(config.read_text())
    raw = {"name": "tiny study", "data": run["data"], "feature_cache": "cache", "seeds": 2,
           "evaluation": {"ks": [5, 10], "topk": 10},
           "encoders": {"words": {"text": {"encoder": "text:minilm", "options": {"template": "{title}. {description}"}}}},
           "content_models": [{"name": "vbpr", "params": {"epochs": 3, "early_stopping_metric": "ndcg@5"}}],
           "baselines": [{"name": "mostpop"}, {"name": "lightgcn", "params": {"epochs": 2, "embedding_size": 8, "early_stopping_metric": "ndcg@5"}}],
           "splits": {"warm": {"strategy": "random_per_user", "options": {"ratios": [0.7, 0.1, 0.2], "seed": 1}},
                      "cold": {"strategy": "cold_start_items", "options": {"cold_fraction": 0.5, "seed": 1}}},
           "sparsity": {"split": "warm", "fractions": [0.5, 1.0]}, **extra}
    path = config.parent / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_study_runs_every_scenario_and_reports_the_sparsity_curve(tmp_path):
    from conftest import write_own_catalogue

    config = write_own_catalogue(tmp_path, n_items=60)
    out = tmp_path / "study"
    result = runner.invoke(app, ["study", str(study_file(config, tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["scenarios"]) == ["warm@0.5", "warm", "cold"]
    warm = summary["scenarios"]["warm"]
    assert list(warm["models"]) == ["mostpop", "lightgcn", "vbpr-words-frozen"]
    assert warm["reference_model"] == "vbpr-words-frozen" and warm["seeds"] == [1, 2]
    assert "cold test items" in summary["scenarios"]["cold"]["protocol"]
    assert "train x0.5" in summary["scenarios"]["warm@0.5"]["split"]
    assert (out / "cold" / "results.json").is_file() and (out / "warm@0.5" / "report.html").is_file()
    markdown = (out / "results.md").read_text()
    assert "## Sparsity curve" in markdown and "50% of train" in markdown and "100% of train" in markdown
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 1

    # a stopped or repeated study reuses finished scenarios, and only those whose config is unchanged
    cold = json.loads((out / "cold" / "results.json").read_text())
    cold["scenario_key"] = "from-another-config"
    (out / "cold" / "results.json").write_text(json.dumps(cold))
    again = runner.invoke(app, ["study", str(study_file(config, tmp_path)), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert again.output.count("already finished") == 2 and "fitting vbpr-words-frozen" in again.output
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["scenarios"]["warm"] == summary["scenarios"]["warm"]
    for name, model in summary["scenarios"]["cold"]["models"].items():  # seeded: the same figures again
        assert rerun["scenarios"]["cold"]["models"][name]["metrics"] == model["metrics"]


def test_study_mistakes_are_caught_before_anything_runs(own_catalogue, tmp_path):
    with pytest.raises(ConfigError, match="paradigms"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, paradigms=["magic"]).read_text()))
    with pytest.raises(ConfigError, match="sparsity.split"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, sparsity={"split": "nope"}).read_text()))
    bad = study_file(own_catalogue, tmp_path, content_models=[{"name": "vbpr", "params": {"factors": "x"}}])
    result = runner.invoke(app, ["study", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "params.factors must be an integer" in result.stderr
    assert not (tmp_path / "o").exists()


def test_study_tunes_every_model_of_the_chosen_scenarios_with_the_same_budget(tmp_path):
    from conftest import write_own_catalogue

    config = write_own_catalogue(tmp_path, n_items=60)
    out = tmp_path / "study"
    path = study_file(config, tmp_path, splits={"warm": {"strategy": "random_per_user",
                                                          "options": {"ratios": [0.7, 0.1, 0.2], "seed": 1}}},
                      tune={"trials": 2, "scenarios": ["warm@0.5"], "metric": "ndcg@5"})
    result = runner.invoke(app, ["study", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    tuning = out / "warm@0.5" / "tuning"
    scenario = json.loads((out / "warm@0.5" / "results.json").read_text())
    assert scenario["tuning"]["trials"] == 2 and not (out / "warm" / "tuning").exists()
    fitted = {m["name"]: m["params"] for m in scenario["config"]["models"]}
    for name in ("lightgcn", "vbpr-words-frozen", "mostpop"):
        best = json.loads((tuning / name / "best_params.json").read_text())
        trials = pd.read_csv(tuning / name / "trials.csv")
        assert len(trials) == (1 if name == "mostpop" else 2)  # nothing to search in MostPopular: one fit
        assert best["selection"] == "valid ndcg@5 (test never seen)"
        for param, value in best["tuned"].items():  # the scenario ran with the chosen values
            assert fitted[name][param] == pytest.approx(value)
    assert "Tuned: every model, 2 Optuna TPE trials each" in (out / "results.md").read_text()


def test_study_tune_section_is_checked(own_catalogue, tmp_path):
    with pytest.raises(ConfigError, match=r"tune.scenarios names \['warm@0.3'\]"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, tune={"trials": 2, "scenarios": ["warm@0.3"]})
                                   .read_text()))
    with pytest.raises(ConfigError, match="tune.trials must be a whole number"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, tune={"trials": 0}).read_text()))


def test_paradigms_take_their_own_train_options_and_unsupported_combinations_are_listed(own_catalogue, tmp_path):
    from prismrec.study import scenario_config

    encoders = {"words": {"text": {"encoder": "text:minilm", "options": {"template": "{title}"},
                                   "paradigm_train": {"end2end": {"adaptation": "adapter", "trainable_layers": 1}}}},
                "aligned": {"aligned": {"encoder": "align", "train": {"epochs": 1}}}}
    study = parse_study(yaml.safe_load(study_file(
        own_catalogue, tmp_path, encoders=encoders, paradigms=["frozen", "end2end"],
        content_models=[{"name": "vbpr"}, {"name": "freedom", "paradigms": ["frozen"], "encoders": ["words"]}])
        .read_text()))
    config = scenario_config(study, "warm")
    assert [m.name for m in config.models] == [
        "mostpop", "lightgcn", "vbpr-words-frozen", "vbpr-words-end2end", "vbpr-aligned-frozen",
        "freedom-words-frozen"]
    end2end = config.features["words.text.end2end"]
    assert end2end.encoder_mode == "end2end" and end2end.train == {"adaptation": "adapter", "trainable_layers": 1}
    assert config.features["words.text.frozen"].encoder_mode == "frozen"
    assert config.features["aligned.aligned.frozen"].train == {"epochs": 1}  # the alignment's own options
    only_sparse = parse_study(yaml.safe_load(study_file(
        own_catalogue, tmp_path, content_models=[{"name": "vbpr"}, {"name": "freedom", "scenarios": ["warm@0.5"]}])
        .read_text()))
    assert [m.name for m in scenario_config(only_sparse, "warm@0.5").models][-2:] == ["vbpr-words-frozen",
                                                                                      "freedom-words-frozen"]
    assert [m.name for m in scenario_config(only_sparse, "cold").models][-1] == "vbpr-words-frozen"
    widened = {"dropout": {"type": "categorical", "choices": [0.0, 0.8]}}
    own_space = parse_study(yaml.safe_load(study_file(
        own_catalogue, tmp_path, content_models=[{"name": "freedom", "search_space": widened}]).read_text()))
    assert scenario_config(own_space, "warm").models[-1].search_space == widened  # a content model's own grid
    with pytest.raises(ConfigError, match=r"lists scenario\(s\) \['warm@0.3'\]"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, content_models=[
            {"name": "vbpr", "scenarios": ["warm@0.3"]}]).read_text()))
    from prismrec.study import grid

    assert grid(study)[1] == ["vbpr-aligned-end2end (encoder 'aligned' declares no paradigm_train.end2end)"]
    with pytest.raises(ConfigError, match=r"lists encoder\(s\) \['clip'\]"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, encoders=encoders,
                                              content_models=[{"name": "vbpr", "encoders": ["clip"]}]).read_text()))
    with pytest.raises(ConfigError, match="lists paradigm 'finetuned'"):
        parse_study(yaml.safe_load(study_file(own_catalogue, tmp_path, encoders=encoders,
                                              content_models=[{"name": "vbpr", "paradigms": ["finetuned"]}])
                                   .read_text()))


def test_study_runs_only_the_scenarios_named_by_scenarios_option(tmp_path):
    from conftest import write_own_catalogue

    config = write_own_catalogue(tmp_path, n_items=60)
    out = tmp_path / "study"
    path = study_file(config, tmp_path, content_models=[{"name": "vbpr", "params": {"epochs": 2, "early_stopping_metric": "ndcg@5"}}],
                      baselines=[{"name": "mostpop"}])
    result = runner.invoke(app, ["study", str(path), "--out", str(out), "--scenarios", "cold, warm@0.5"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["scenarios"]) == ["warm@0.5", "cold"]  # the study's order, not the option's
    assert not (out / "warm").exists()
    markdown = (out / "results.md").read_text()  # the curve has only the points that ran
    assert "## Sparsity curve" in markdown and "50% of train" in markdown and "100% of train" not in markdown
    bad = runner.invoke(app, ["study", str(path), "--out", str(tmp_path / "o"), "--scenarios", "warm@0.3"])
    assert bad.exit_code == 2 and "--scenarios names ['warm@0.3']" in bad.stderr
    assert not (tmp_path / "o").exists()
