"""Explicit encoder registry: ``register_encoder("text:minilm", factory)``.

A spec such as ``"clip:/models/clip-vit-b32"`` or ``"align:minilm+efficientnet-lite0"``
is split at the first ``:`` into a registered prefix and an argument passed to the factory.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable

_FACTORIES: dict[str, Callable] = {}
_OPTIONS_FROM: dict[str, Callable] = {}


def register_encoder(prefix: str, factory: Callable, *, options_from: Callable | None = None) -> Callable:
    """Register ``factory(argument: str | None, **options) -> Encoder`` under ``prefix``.

    ``options_from``: the callable whose keyword arguments the factory forwards through
    ``**options`` (usually the encoder class), so that a misspelt option is reported with
    the list of accepted ones.
    """
    if prefix in _FACTORIES:
        raise ValueError(f"an encoder named {prefix!r} is already registered")
    _FACTORIES[prefix] = factory
    if options_from is not None:
        _OPTIONS_FROM[prefix] = options_from
    return factory


def encoder_options(prefix: str) -> list[str]:
    """The option names the encoder registered as ``prefix`` accepts."""
    names = []
    for function in (_FACTORIES[prefix], _OPTIONS_FROM.get(prefix)):
        if function is None:
            continue
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind == inspect.Parameter.KEYWORD_ONLY or (
                    parameter.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD and parameter.default is not
                    inspect.Parameter.empty and parameter.name != "argument"):
                names.append(parameter.name)
    return sorted(set(names) - {"self"})


def available_encoders() -> list[str]:
    return sorted(_FACTORIES)


def create_encoder(spec: str, **options):
    """Build an encoder from a spec: exact name first (``text:minilm``), then ``prefix:argument``."""
    if spec in _FACTORIES:
        prefix, argument = spec, None
    else:
        prefix, _, argument = spec.partition(":")
        if prefix not in _FACTORIES or not argument:
            raise KeyError(f"unknown encoder {spec!r}; registered: {', '.join(available_encoders()) or 'none'}")
    try:
        return _FACTORIES[prefix](argument, **options)
    except TypeError as error:
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if unexpected is None or unexpected.group(1) not in options:
            raise
        raise TypeError(f"encoder {spec!r} has no option {unexpected.group(1)!r}; it accepts "
                        f"{encoder_options(prefix) or 'no options'}") from None
