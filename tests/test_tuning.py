"""prismrec tune: Optuna on validation only, same budget per model, resumable, reusable by compare."""
import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from prismrec.cli import app
from prismrec.config import ConfigError, parse_config
from prismrec.search_spaces import search_space
from prismrec.models import BPR

runner = CliRunner()


def test_tune_selects_on_validation_writes_trials_and_compare_reuses_the_choice(own_catalogue, tmp_path):
    out = tmp_path / "tune"
    result = runner.invoke(app, ["tune", str(own_catalogue), "--out", str(out), "--trials", "3", "--metric", "ndcg@5"])
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(out / "bpr" / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    assert {"learning_rate", "factors", "regularization"} <= set(trials.columns)
    assert len(pd.read_csv(out / "mostpop" / "trials.csv")) == 1  # nothing to search
    best = json.loads((out / "bpr" / "best_params.json").read_text())
    assert best["valid_value"] == pytest.approx(trials["valid_ndcg@5"].max())
    assert best["selection"].startswith("valid ndcg@5") and "ndcg@5" in best["test_metrics"]
    assert best["params"]["learning_rate"] == best["tuned"]["learning_rate"]
    # a second run owes no trial: the study resumes from optuna.db
    again = runner.invoke(app, ["tune", str(own_catalogue), "--out", str(out), "--trials", "3", "--model", "bpr"])
    assert again.exit_code == 0 and "(3 already done)" in again.stderr
    raw = yaml.safe_load(own_catalogue.read_text())
    raw["models"][1]["tuned"] = "../tune"  # relative to the config's folder
    own_catalogue.write_text(yaml.safe_dump(raw))
    assert runner.invoke(app, ["compare", str(own_catalogue), "--out", str(tmp_path / "cmp")]).exit_code == 0
    report = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert report["models"]["bpr"]["params"]["factors"] == best["tuned"]["factors"]


def test_search_space_with_an_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match="names 'depth', which the model does not accept"):
        search_space("bpr", BPR, {"depth": {"type": "int", "low": 1, "high": 3}})
    with pytest.raises(ConfigError, match=r"models\[0\].search_space.*'depth'"):
        parse_config({"data": {"loader": "recbole_ml100k"},
                      "models": [{"name": "bpr", "search_space": {"depth": {"type": "int", "low": 1, "high": 2}}}]})
    with pytest.raises(ValueError, match="must be"):
        search_space("bpr", BPR, {"factors": {"type": "int", "low": 1}})
