"""Explicit model registry: ``register("bpr", BPR)``; duplicates are rejected.

Nothing is discovered by scanning modules: ``prismrec.models`` registers every
built-in model by name, and users register their own the same way.
"""
from __future__ import annotations

_REGISTRY: dict[str, type] = {}


def register(name: str, model_cls: type) -> type:
    """Register ``model_cls`` under ``name``; raises ``ValueError`` on a duplicate name."""
    from prismrec.models.base import Recommender

    if not (isinstance(model_cls, type) and issubclass(model_cls, Recommender)):
        raise TypeError(f"register({name!r}, ...): expected a Recommender subclass, got {model_cls!r}")
    key = name.lower()
    if key in _REGISTRY:
        raise ValueError(f"a model named {key!r} is already registered ({_REGISTRY[key].__name__})")
    _REGISTRY[key] = model_cls
    return model_cls


def get_model_class(name: str) -> type:
    """The class registered as ``name``; the error lists the known names."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def name_of(model_cls: type) -> str:
    for key, value in _REGISTRY.items():
        if value is model_cls:
            return key
    raise KeyError(f"{model_cls.__name__} is not registered; call prismrec.models.register(name, cls) first")


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, params: dict | None = None):
    """Instantiate a registered model; unknown hyperparameters raise a clear ``TypeError``."""
    import inspect

    model_cls = get_model_class(name)
    params = dict(params or {})
    accepted = set(inspect.signature(model_cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TypeError(f"model {name!r} has no hyperparameter(s) {unknown}; it accepts {sorted(accepted)}")
    return model_cls(**params)
