"""Hyperparameter search spaces, as data: one table per model, read by ``prismrec tune``.

Each entry maps a hyperparameter to ``{"type": "float", "low": .., "high": .., "log": true}``,
``{"type": "int", "low": .., "high": ..}`` or ``{"type": "categorical", "choices": [..]}``.
A config may replace a model's space (``models[i].search_space``); every name is checked
against the model's ``__init__`` before any trial runs.
"""
from __future__ import annotations

import inspect

SEARCH_SPACES: dict[str, dict[str, dict]] = {
    "mostpop": {},
    "bpr": {
        "factors": {"type": "categorical", "choices": [32, 64, 128]},
        "learning_rate": {"type": "float", "low": 0.005, "high": 0.1, "log": True},
        "regularization": {"type": "float", "low": 1e-5, "high": 0.05, "log": True},
    },
    "lightgcn": {
        "n_layers": {"type": "int", "low": 1, "high": 4},
        "learning_rate": {"type": "float", "low": 5e-4, "high": 0.01, "log": True},
        "reg": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    },
    "vbpr": {
        "learning_rate": {"type": "float", "low": 5e-4, "high": 0.02, "log": True},
        "regularization": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "visual_factors": {"type": "categorical", "choices": [16, 32, 64]},
    },
    # the multimodal models: the grids of MMRec's configs/model/*.yaml (hyper_parameters)
    "itemknn_cbf": {
        "knn_k": {"type": "categorical", "choices": [5, 10, 20, 50, 100]},
        "shrink": {"type": "categorical", "choices": [0.0, 10.0, 100.0]},
    },
    "freedom": {
        "dropout": {"type": "categorical", "choices": [0.8, 0.9]},
        "reg_weight": {"type": "categorical", "choices": [0.0, 1e-5, 1e-4, 1e-3]},
    },
    "lattice": {
        "reg_weight": {"type": "categorical", "choices": [0.0, 1e-5, 1e-4, 1e-3]},
        "learning_rate": {"type": "categorical", "choices": [1e-4, 5e-4, 1e-3, 5e-3]},
    },
    "bm3": {
        "n_layers": {"type": "categorical", "choices": [1, 2]},
        "reg_weight": {"type": "categorical", "choices": [0.1, 0.01]},
        "dropout": {"type": "categorical", "choices": [0.3, 0.5]},
    },
    "mgcn": {"cl_weight": {"type": "categorical", "choices": [0.001, 0.01, 0.1]}},
    "lgmrec": {  # MMRec lists one setting per data set (Baby, Sports, Clothing): their union
        "hyper_num": {"type": "categorical", "choices": [4, 64]},
        "keep_rate": {"type": "categorical", "choices": [0.2, 0.4, 0.5]},
        "alpha": {"type": "categorical", "choices": [0.2, 0.3, 0.6]},
        "n_hyper_layers": {"type": "categorical", "choices": [1, 2]},
    },
    "mmgcn": {
        "reg_weight": {"type": "categorical", "choices": [0.0, 1e-5, 1e-4, 1e-3, 1e-2, 0.1]},
        "learning_rate": {"type": "categorical", "choices": [1e-4, 5e-4, 1e-3, 5e-3, 1e-2]},
    },
    "grcn": {  # MMRec's grid also lists learning rate 1, which diverges
        "reg_weight": {"type": "categorical", "choices": [0.1, 0.01, 1e-3, 1e-4, 1e-5]},
        "learning_rate": {"type": "categorical", "choices": [0.1, 0.01, 1e-3, 1e-4]},
    },
    "slmrec": {
        "learning_rate": {"type": "categorical", "choices": [1e-4, 1e-3, 1e-2, 0.1]},
        "ssl_temperature": {"type": "categorical", "choices": [0.1, 0.2, 0.5, 1.0]},
        "ssl_alpha": {"type": "categorical", "choices": [0.01, 0.05, 0.1, 0.5, 1.0]},
    },
    "mmgcl": {  # not in MMRec: the ranges the paper studies
        "ssl_weight": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
        "temperature": {"type": "categorical", "choices": [0.1, 0.2, 0.5]},
        "edge_dropout": {"type": "categorical", "choices": [0.1, 0.2, 0.3, 0.5]},
    },
    "sasrec": {
        "hidden_size": {"type": "categorical", "choices": [32, 64, 128]},
        "dropout": {"type": "float", "low": 0.1, "high": 0.5},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
    },
    "foundation": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
        "adapter_reduction": {"type": "categorical", "choices": [4, 8, 16]},
    },
}

_KINDS = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}


def search_space(model_name: str, model_cls, override: dict | None = None, where: str = "") -> dict:
    """The checked search space of a model: ``override`` (from a config) or the table's entry.

    Example:
        >>> from prismrec.models import BPR
        >>> sorted(search_space("bpr", BPR))
        ['factors', 'learning_rate', 'regularization']
    """
    space = override if override is not None else SEARCH_SPACES.get(model_name)
    if space is None:
        raise ValueError(f"{where}model {model_name!r} has no declared search space; give one in the config as "
                         f"search_space: {{param: {{type: float, low: .., high: ..}}}}")
    accepted = set(inspect.signature(model_cls.__init__).parameters) - {"self"}
    for name, spec in space.items():
        if name not in accepted:
            raise ValueError(f"{where}search space of {model_name!r} names {name!r}, which the model does not "
                             f"accept; its hyperparameters are {sorted(accepted)}")
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in _KINDS or any(key not in spec for key in _KINDS[kind]):
            raise ValueError(f"{where}search space entry {name!r} must be {{type: float|int, low, high[, log]}} "
                             f"or {{type: categorical, choices: [...]}}, got {spec!r}")
    return space


def suggest(trial, space: dict) -> dict:
    """One Optuna trial's parameters from ``space``."""
    params = {}
    for name, spec in space.items():
        if spec["type"] == "float":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=bool(spec.get("log")))
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_categorical(name, spec["choices"])
    return params
