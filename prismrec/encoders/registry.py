"""Explicit encoder registry: ``register_encoder("text:minilm", factory)``.

A spec such as ``"clip:/models/clip-vit-b32"`` or ``"align:minilm+efficientnet-lite0"``
is split at the first ``:`` into a registered prefix and an argument passed to the factory.
"""
from __future__ import annotations

from collections.abc import Callable

_FACTORIES: dict[str, Callable] = {}


def register_encoder(prefix: str, factory: Callable) -> Callable:
    """Register ``factory(argument: str | None, **options) -> Encoder`` under ``prefix``."""
    if prefix in _FACTORIES:
        raise ValueError(f"an encoder named {prefix!r} is already registered")
    _FACTORIES[prefix] = factory
    return factory


def available_encoders() -> list[str]:
    return sorted(_FACTORIES)


def create_encoder(spec: str, **options):
    """Build an encoder from a spec: exact name first (``text:minilm``), then ``prefix:argument``."""
    if spec in _FACTORIES:
        return _FACTORIES[spec](None, **options)
    prefix, _, argument = spec.partition(":")
    if prefix in _FACTORIES and argument:
        return _FACTORIES[prefix](argument, **options)
    raise KeyError(f"unknown encoder {spec!r}; registered: {', '.join(available_encoders()) or 'none'}")
