"""Run descriptions for the CLI. YAML stops here: everything below gets plain arguments.

A config names the data, the split, optional item features (encoders), the evaluation,
the seeds and the models. Every key is checked before anything runs; a typo, a wrong type
or an unknown option yields one line naming the file, the key and what was expected.

Relative paths in a config (``data.path``, every path-like data option, ``feature_cache``
and the folder of ``align:``/``clip:``/``text:`` encoder specs) resolve against the
config file's folder, so a run does not depend on the working directory.
"""
from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import yaml

from prismrec.adapt.modes import check_end2end_support
from prismrec.config_checks import (
    check_data, check_evaluation, check_feature, check_model_params, check_seeds, check_split)


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
    #: keep this share of each user's training interactions (a sparsity curve point); valid/test unchanged
    train_fraction: float = 1.0


@dataclass
class FeatureConfig:
    encoder: str
    options: dict = field(default_factory=dict)
    #: for ``align`` encoders: train the aligned encoder as part of the run when its checkpoint is
    #: missing (options of :func:`prismrec.encoders.align_train.train_alignment`, e.g. ``{epochs: 10}``);
    #: with ``encoder_mode: end2end``, options of :class:`prismrec.adapt.AdaptationConfig` (+ ``head_dim``)
    train: dict | None = None
    #: ``frozen`` (features from the store), ``finetuned`` (adapt the text tower in-domain first, then
    #: re-encode under a new id) or ``end2end`` (the recommendation loss trains the tower's top)
    encoder_mode: str = "frozen"


@dataclass
class EvaluationConfig:
    ks: list = field(default_factory=lambda: [10, 20])
    metrics: list = field(default_factory=lambda: ["recall", "ndcg", "hit", "precision", "mrr", "map"])
    headline: list | None = None
    sampled_negatives: int | None = None
    batch_size: int = 2048
    topk: int = 20
    #: the model every other is tested against (default: the first model)
    reference: str | None = None
    #: also test every pair of models (Holm-corrected over all pairs)
    all_pairs: bool = False
    #: cold-start item splits: rank among the cold test items ("cold", default) or among all items ("all")
    cold_start_candidates: str = "cold"
    #: mask each user's valid items at test time (the default); false gives MMRec's protocol
    #: (only train items masked), labelled as such, for comparison with published MMRec tables
    mask_valid: bool = True


@dataclass
class ModelConfig:
    name: str
    model: str | None = None
    params: dict = field(default_factory=dict)
    features: list = field(default_factory=list)
    #: replaces the model's search space for ``prismrec tune`` (see :mod:`prismrec.search_spaces`)
    search_space: dict | None = None
    #: a ``best_params.json`` written by ``prismrec tune`` (or its folder): its chosen values override ``params``
    tuned: str | None = None

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
    #: ``3`` runs seeds base..base+2 (base: the split's seed, else 0); a list names them; ``None``: one run
    seeds: int | list | None = None
    source: str = "<dict>"

    @property
    def folder(self) -> Path | None:
        """The config file's folder (relative paths resolve against it), or ``None`` for an in-memory config."""
        source = Path(self.source)
        return source.parent if self.source and not self.source.startswith("<") and source.suffix else None


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


def _checked(source: str, check, *args):
    """Run a check from :mod:`prismrec.config_checks`; its ``ValueError`` becomes a ``ConfigError``."""
    try:
        return check(*args)
    except (ValueError, KeyError, TypeError) as error:
        message = error.args[0] if error.args else str(error)
        raise ConfigError(f"{source}: {message}") from None


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
    split = SplitConfig(**_build(SplitConfig, raw.get("split") or {}, "split", source))
    evaluation = EvaluationConfig(**_build(EvaluationConfig, raw.get("evaluation") or {}, "evaluation", source))
    _checked(source, check_data, data)
    _checked(source, check_split, split)
    _checked(source, check_evaluation, evaluation)
    features = {}
    for name, spec in (raw.get("features") or {}).items():
        features[name] = FeatureConfig(**_build(FeatureConfig, spec, f"features.{name}", source))
        _checked(source, check_feature, name, features[name])
    if not isinstance(raw["models"], list) or not raw["models"]:
        raise ConfigError(f"{source}: 'models' must be a non-empty list of {{name: ..., params: ...}}")
    models = []
    for position, spec in enumerate(raw["models"]):
        model = ModelConfig(**_build(ModelConfig, spec, f"models[{position}]", source))
        if str(model.registry_name).lower() not in available_models():
            raise ConfigError(
                f"{source}: models[{position}] names unknown model {model.registry_name!r}; "
                f"known models: {', '.join(available_models())}"
            )
        _checked(source, check_model_params, model, f"models[{position}]")
        for feature in model.features:
            if feature not in features:
                raise ConfigError(
                    f"{source}: models[{position}].features names {feature!r}, which the 'features' section "
                    f"does not define (defined: {sorted(features) or 'none'})"
                )
        _checked(source, check_end2end_support, model, features, f"models[{position}]")
        models.append(model)
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: model names must be unique, got {names}")
    if evaluation.reference is not None and evaluation.reference not in names:
        raise ConfigError(f"{source}: evaluation.reference names {evaluation.reference!r}, which is not one of "
                          f"the models {names}")
    extra = {k: raw[k] for k in ("name", "feature_cache", "threads", "seeds") if k in raw}
    if "seeds" in extra:
        extra["seeds"] = _checked(source, check_seeds, extra["seeds"], "seeds")
    config = ExperimentConfig(data=data, models=models, split=split, features=features, evaluation=evaluation,
                              source=source, **extra)
    return resolve_paths(config)


#: data options that hold paths (besides any option whose name ends in _path, _dir or _file)
PATH_OPTIONS = {"items_path", "image_dir", "meta_path", "folder"}
#: encoder prefixes whose argument is a local folder
FOLDER_ENCODERS = ("align:", "clip:", "clip-image:", "clip-text:", "text:", "adapted-text:")


def _is_path_option(name: str) -> bool:
    return name in PATH_OPTIONS or name.endswith(("_path", "_dir", "_file"))


def resolve_paths(config: ExperimentConfig) -> ExperimentConfig:
    """Make every relative path of ``config`` relative to its file's folder (in place; returns it)."""
    base = config.folder
    if base is None:
        return config

    def resolve(value):
        if value is None or Path(str(value)).is_absolute():
            return value
        return os.path.normpath(base / str(value))

    config.data.path = resolve(config.data.path)
    config.data.options = {k: resolve(v) if _is_path_option(k) and isinstance(v, str) else v
                           for k, v in config.data.options.items()}
    config.feature_cache = resolve(config.feature_cache)
    for model in config.models:
        model.tuned = resolve(model.tuned)
    for spec in config.features.values():
        if spec.encoder.startswith(FOLDER_ENCODERS) and spec.encoder != "text:minilm":
            prefix, _, folder = spec.encoder.partition(":")
            spec.encoder = f"{prefix}:{resolve(folder)}"
        spec.options = {k: resolve(v) if _is_path_option(k) or k == "feature_store" else v
                        for k, v in spec.options.items()}
    return config


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
