import pytest

from prismrec.config import ConfigError, load_config, parse_config

GOOD = {"data": {"loader": "recbole_ml100k"}, "models": [{"name": "mostpop"}]}


def test_good_config_parses_with_defaults():
    cfg = parse_config(GOOD)
    assert cfg.split.strategy == "random_per_user" and cfg.evaluation.ks == [10, 20]


@pytest.mark.parametrize("raw, message", [
    ({**GOOD, "models": [{"name": "deepmagic"}]}, "models\\[0\\] names unknown model 'deepmagic'; known models: .*bpr"),
    ({**GOOD, "modles": []}, "unknown key 'modles'"),
    ({"models": [{"name": "bpr"}]}, "missing required key 'data'"),
    ({**GOOD, "data": {"loader": "x", "pth": "y"}}, "unknown key 'data.pth'"),
    ({**GOOD, "models": [{"name": "vbpr", "features": ["image"]}]}, "names 'image', which the 'features' section"),
    ({**GOOD, "models": [{"name": "bpr"}, {"name": "bpr"}]}, "model names must be unique"),
    ({**GOOD, "evaluation": [10]}, "'evaluation' must be a mapping"),
])
def test_bad_config_names_the_key(raw, message):
    import prismrec.models  # noqa: F401

    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="run.yaml")


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  loader: [unclosed\nmodels: []\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ is not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
