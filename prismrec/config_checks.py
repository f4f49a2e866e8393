"""Checks of a parsed config's values against what the stages accept.

Each check raises a ``ValueError`` whose message names the config key, what was found and
what is accepted; :mod:`prismrec.config` prefixes it with the file. Accepted options are read
from the signatures of the functions that will receive them (loaders, splitters, model
``__init__``), so the checks never drift from the code.

Example:
    >>> from prismrec.config import DataConfig
    >>> check_data(DataConfig(loader="generic", path="r.csv", options={"user_column": "u"}))
    Traceback (most recent call last):
    ...
    ValueError: unknown key 'data.options.user_column' for loader 'generic'; accepted options: encoding, image_col, image_dir, item_col, items_path, rating_col, rating_threshold, text_fields, time_col, user_col
"""
from __future__ import annotations

import inspect
import numbers


def _keyword_parameters(function, skip_first: bool = False) -> dict[str, inspect.Parameter]:
    parameters = list(inspect.signature(function).parameters.values())
    if skip_first and parameters:
        parameters = parameters[1:]
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: p for p in parameters if p.kind in kinds and p.name != "self"}


def _check_options(options, accepted, key: str, owner: str) -> None:
    if not isinstance(options, dict):
        raise ValueError(f"'{key}' must be a mapping of option: value, got {options!r}")
    for name in options:
        if name not in accepted:
            raise ValueError(f"unknown key '{key}.{name}' for {owner}; accepted options: "
                             f"{', '.join(sorted(accepted)) or 'none'}")


def check_data(data) -> None:
    from prismrec.data.loaders import _NO_PATH, LOADERS

    loader = str(data.loader).replace("-", "_")
    if loader not in LOADERS:
        raise ValueError(f"data.loader names unknown loader {data.loader!r}; known loaders: "
                         f"{', '.join(sorted(LOADERS))}")
    accepted = _keyword_parameters(LOADERS[loader], skip_first=loader not in _NO_PATH)
    _check_options(data.options, accepted, "data.options", f"loader {loader!r}")
    if data.k_core is not None and (isinstance(data.k_core, bool) or not isinstance(data.k_core, int)
                                    or data.k_core < 1):
        raise ValueError(f"data.k_core must be a positive integer, got {data.k_core!r}")


def check_split(split) -> None:
    from prismrec.data.splits import SPLITTERS, split_options

    if split.strategy not in SPLITTERS:
        raise ValueError(f"split.strategy names unknown strategy {split.strategy!r}; choose one of "
                         f"{', '.join(sorted(SPLITTERS))}")
    _check_options(split.options, split_options(split.strategy), "split.options", f"strategy {split.strategy!r}")
    fraction = split.train_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
        raise ValueError(f"split.train_fraction must be a number in (0, 1], got {fraction!r}")


def check_evaluation(evaluation) -> None:
    from prismrec.evaluation.evaluator import check_cutoffs, check_sampled_negatives
    from prismrec.evaluation.metrics import METRICS

    evaluation.ks = check_cutoffs(evaluation.ks, "evaluation.ks")
    check_sampled_negatives(evaluation.sampled_negatives, "evaluation.sampled_negatives")
    if not isinstance(evaluation.metrics, list) or not evaluation.metrics:
        raise ValueError(f"evaluation.metrics must be a list of metric names, got {evaluation.metrics!r}")
    unknown = [m for m in evaluation.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"evaluation.metrics names unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    for name in ("topk", "batch_size"):
        check_cutoffs([getattr(evaluation, name)], f"evaluation.{name}")
    if evaluation.cold_start_candidates not in ("cold", "all"):
        raise ValueError("evaluation.cold_start_candidates must be 'cold' (rank among the cold test items) or "
                         f"'all' (rank them among all items), got {evaluation.cold_start_candidates!r}")
    for name in ("all_pairs", "mask_valid"):
        if not isinstance(getattr(evaluation, name), bool):
            raise ValueError(f"evaluation.{name} must be true or false, got {getattr(evaluation, name)!r}")


def check_feature(name: str, feature) -> None:
    if not isinstance(feature.encoder, str) or not feature.encoder:
        raise ValueError(f"features.{name}.encoder must be an encoder spec such as text:minilm, got "
                         f"{feature.encoder!r}")
    if not isinstance(feature.options, dict):
        raise ValueError(f"features.{name}.options must be a mapping, got {feature.options!r}")
    from prismrec.adapt.modes import check_encoder_mode

    mode_accepted = check_encoder_mode(name, feature)
    if mode_accepted is not None:  # finetuned / end2end: what their 'train' options may hold
        _check_options(feature.train or {}, mode_accepted[0], f"features.{name}.train", mode_accepted[1])
    elif feature.train is not None:
        from prismrec.encoders.align_train import train_alignment

        if not feature.encoder.startswith("align"):
            raise ValueError(f"features.{name}.train trains an aligned encoder; it needs encoder 'align' or "
                             f"'align:<folder>', got {feature.encoder!r}")
        accepted = set(_keyword_parameters(train_alignment, skip_first=True)) - {
            "output_dir", "feature_store", "progress"}
        _check_options(feature.train, accepted, f"features.{name}.train", "train_alignment")


def _type_problem(value, default) -> str | None:
    """What is wrong with ``value`` for a parameter whose default is ``default`` (None when fine)."""
    if default is None or default is inspect.Parameter.empty:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if ok else "an integer"
    if isinstance(default, float):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, (list, tuple)):
        return None if isinstance(value, (list, tuple, str)) else "a list"
    return None


def check_model_params(model, where: str) -> None:
    from prismrec.models.registry import get_model_class

    if not isinstance(model.params, dict):
        raise ValueError(f"{where}.params must be a mapping of hyperparameter: value, got {model.params!r}")
    if not isinstance(model.features, list):
        raise ValueError(f"{where}.features must be a list of feature names, got {model.features!r}")
    model_cls = get_model_class(model.registry_name)
    accepted = _keyword_parameters(model_cls.__init__)
    if model.search_space is not None:
        from prismrec.search_spaces import search_space

        if not isinstance(model.search_space, dict):
            raise ValueError(f"{where}.search_space must be a mapping of hyperparameter: range")
        search_space(model.registry_name, model_cls, model.search_space, f"{where}.search_space: ")
    for name, value in model.params.items():
        if name not in accepted:
            raise ValueError(f"unknown key '{where}.params.{name}' for model {model.registry_name!r}; "
                             f"accepted hyperparameters: {', '.join(sorted(accepted))}")
        problem = _type_problem(value, accepted[name].default)
        if problem:
            raise ValueError(f"{where}.params.{name} must be {problem} (default {accepted[name].default!r}), "
                             f"got {value!r}")


def check_seeds(seeds, key: str = "seeds"):
    """``seeds``: a positive count or a non-empty list of distinct non-negative integers."""
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(seeds) and seeds >= 1:
        return int(seeds)
    if isinstance(seeds, list) and seeds and all(is_int(s) and s >= 0 for s in seeds) and \
            len(set(seeds)) == len(seeds):
        return [int(s) for s in seeds]
    raise ValueError(f"{key} must be a number of seeds (e.g. 3) or a list of distinct non-negative integers "
                     f"(e.g. [0, 1, 2]), got {seeds!r}")
