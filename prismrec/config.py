"""Run descriptions for the CLI. YAML stops here: everything below gets plain arguments.

A config names the data, the split, optional item features (encoders), the evaluation
and the models. Every key is checked; a typo yields one line naming the key and the file.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config problem, phrased as one line that names the file and the key."""


@dataclass
class DataConfig:
    loader: str
    path: str | None = None
    options: dict = field(default_factory=dict)
    k_core: int | None = None


@dataclass
class SplitConfig:
    strategy: str = "random_per_user"
    options: dict = field(default_factory=dict)


@dataclass
class FeatureConfig:
    encoder: str
    options: dict = field(default_factory=dict)


@dataclass
class EvaluationConfig:
    ks: list = field(default_factory=lambda: [10, 20])
    metrics: list = field(default_factory=lambda: ["recall", "ndcg", "hit", "precision", "mrr", "map"])
    headline: list | None = None
    sampled_negatives: int | None = None
    batch_size: int = 2048
    topk: int = 20


@dataclass
class ModelConfig:
    name: str
    model: str | None = None
    params: dict = field(default_factory=dict)
    features: list = field(default_factory=list)

    @property
    def registry_name(self) -> str:
        return self.model or self.name


@dataclass
class ExperimentConfig:
    data: DataConfig
    models: list
    name: str = "experiment"
    split: SplitConfig = field(default_factory=SplitConfig)
    features: dict = field(default_factory=dict)
    feature_cache: str = ".prismrec_cache"
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    threads: int | None = None
    source: str = "<dict>"


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _build(cls, raw, where: str, source: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{where or 'config'}' must be a mapping, got {type(raw).__name__}")
    allowed = {f.name for f in fields(cls)} - {"source"}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key '{_key(where, key)}'; expected one of {sorted(allowed)}")
    for key in sorted(required - set(raw)):
        raise ConfigError(f"{source}: missing required key '{_key(where, key)}'")
    return raw


def parse_config(raw: dict, source: str = "<dict>") -> ExperimentConfig:
    """Validate a config mapping and build an :class:`ExperimentConfig`.

    Example:
        >>> cfg = parse_config({"data": {"loader": "recbole_ml100k"}, "models": [{"name": "bpr"}]})
        >>> cfg.models[0].registry_name
        'bpr'
    """
    import prismrec.models  # noqa: F401  (registers the built-in models)
    from prismrec.models.registry import available_models

    _build(ExperimentConfig, raw, "", source)
    data = DataConfig(**_build(DataConfig, raw["data"], "data", source))
    split = SplitConfig(**_build(SplitConfig, raw.get("split", {}), "split", source))
    evaluation = EvaluationConfig(**_build(EvaluationConfig, raw.get("evaluation", {}), "evaluation", source))
    features = {}
    for name, spec in (raw.get("features") or {}).items():
        features[name] = FeatureConfig(**_build(FeatureConfig, spec, f"features.{name}", source))
    if not isinstance(raw["models"], list) or not raw["models"]:
        raise ConfigError(f"{source}: 'models' must be a non-empty list of {{name: ..., params: ...}}")
    models = []
    for position, spec in enumerate(raw["models"]):
        model = ModelConfig(**_build(ModelConfig, spec, f"models[{position}]", source))
        if model.registry_name.lower() not in available_models():
            raise ConfigError(
                f"{source}: models[{position}] names unknown model {model.registry_name!r}; "
                f"known models: {', '.join(available_models())}"
            )
        for feature in model.features:
            if feature not in features:
                raise ConfigError(
                    f"{source}: models[{position}].features names {feature!r}, which the 'features' section "
                    f"does not define (defined: {sorted(features) or 'none'})"
                )
        models.append(model)
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: model names must be unique, got {names}")
    extra = {k: raw[k] for k in ("name", "feature_cache", "threads") if k in raw}
    return ExperimentConfig(data=data, models=models, split=split, features=features, evaluation=evaluation,
                            source=source, **extra)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(error, 'problem', error)})") from None
    return parse_config(raw or {}, source=str(path))
