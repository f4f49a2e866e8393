"""The ``encoder_mode`` switch of a feature: ``frozen | finetuned | end2end``.

* ``frozen``: features come from the store (the encoder as shipped);
* ``finetuned``: the text tower is adapted in-domain first (``align`` contrastive training
  with ``adaptation: lora | adapter | prompt | full``, default ``lora``), then re-encodes
  the catalogue under a new encoder id (``adapted-text:<dir>`` for a ``text:`` feature,
  ``align:<dir>`` for an ``align`` feature);
* ``end2end``: the model's recommendation loss trains the text tower's top
  (:mod:`prismrec.adapt.end2end`); only models with ``set_item_feature_modules`` accept it.

Example:
    >>> from prismrec.config import FeatureConfig
    >>> check_encoder_mode("text", FeatureConfig(encoder="image:efficientnet-lite0", encoder_mode="end2end"))
    Traceback (most recent call last):
    ...
    ValueError: features.text: encoder_mode end2end trains the top of a text tower; it needs encoder text:minilm or text:<folder>, got 'image:efficientnet-lite0'
"""
from __future__ import annotations

import inspect
from dataclasses import fields

ENCODER_MODES = ("frozen", "finetuned", "end2end")
END2END_EXTRA_OPTIONS = ("head_dim", "seed")


def _kind(encoder: str) -> str:
    if encoder.startswith("text:"):
        return "text"
    return "align" if encoder == "align" or encoder.startswith("align:") else "other"


def check_encoder_mode(name: str, feature) -> tuple[set, str] | None:
    """Check ``feature.encoder_mode`` against its encoder; ``(accepted train options, owner)`` or ``None`` (frozen)."""
    mode, kind = feature.encoder_mode, _kind(str(feature.encoder))
    if mode not in ENCODER_MODES:
        raise ValueError(f"features.{name}.encoder_mode must be one of {', '.join(ENCODER_MODES)}, got {mode!r}")
    if mode == "frozen":
        return None
    if mode == "end2end":
        if kind != "text":
            raise ValueError(f"features.{name}: encoder_mode end2end trains the top of a text tower; it needs encoder "
                             f"text:minilm or text:<folder>, got {feature.encoder!r}")
        from prismrec.adapt.adapters import AdaptationConfig

        accepted = {f.name for f in fields(AdaptationConfig)} | set(END2END_EXTRA_OPTIONS)
        return accepted, "end2end (prismrec.adapt.AdaptationConfig options, head_dim, seed)"
    if kind == "other":
        raise ValueError(f"features.{name}: encoder_mode finetuned adapts a text tower in-domain; it needs encoder "
                         f"text:minilm, text:<folder>, align or align:<folder>, got {feature.encoder!r}")
    from prismrec.encoders.align_train import train_alignment

    accepted = set(inspect.signature(train_alignment).parameters) - {"catalog", "output_dir", "feature_store", "progress"}
    if kind == "text":
        accepted -= {"text_encoder", "text_template"}  # the feature's encoder and its template
        extra = sorted(set(feature.options) - {"template"})
        if extra:
            raise ValueError(f"features.{name}.options: {extra} cannot be used with encoder_mode finetuned (the "
                             "adapted tower takes only 'template'; put tower options in train.adaptation_options)")
    return accepted, "train_alignment"


def check_end2end_support(model_config, features: dict, where: str) -> None:
    """A model given an ``end2end`` feature must be able to train an encoder (``set_item_feature_modules``).

    Checked when the config is read, so it fails before any encoding or training.
    """
    from prismrec.models.registry import get_model_class

    end2end = sorted(name for name in model_config.features
                     if name in features and features[name].encoder_mode == "end2end")
    model_cls = get_model_class(model_config.registry_name)
    if end2end and not hasattr(model_cls, "set_item_feature_modules"):
        raise ValueError(f"{where} ({model_config.name}): {model_cls.__name__} cannot train an encoder end to end, "
                         f"but feature(s) {end2end} use encoder_mode end2end; use encoder_mode frozen or finetuned "
                         "for this model, or a model that supports it (vbpr)")


def alignment_run(feature) -> tuple[dict, str] | None:
    """``(train_alignment options, prefix of the resulting encoder spec)`` when ``feature`` trains an alignment.

    Example:
        >>> from prismrec.config import FeatureConfig
        >>> alignment_run(FeatureConfig(encoder="text:minilm", encoder_mode="finetuned", train={"epochs": 2}))
        ({'text_encoder': 'text:minilm', 'adaptation': 'lora', 'epochs': 2}, 'adapted-text')
    """
    kind, mode, train = _kind(str(feature.encoder)), feature.encoder_mode, dict(feature.train or {})
    default = {"adaptation": "lora"} if mode == "finetuned" else {}
    if kind == "text" and mode == "finetuned":
        template = {"text_template": feature.options["template"]} if "template" in feature.options else {}
        return {"text_encoder": feature.encoder, **default, **template, **train}, "adapted-text"
    if kind == "align" and (feature.train is not None or mode == "finetuned"):
        return {**default, **train}, "align"
    return None


def end2end_encoder(feature, catalog, feature_cache: str, *, progress: bool = False):
    """The :class:`~prismrec.adapt.end2end.End2EndItemEncoder` of an ``end2end`` feature over ``catalog``."""
    from prismrec.adapt.adapters import AdaptationConfig
    from prismrec.adapt.end2end import End2EndItemEncoder
    from prismrec.encoders.registry import create_encoder

    options = dict(feature.train or {})
    extra = {key: options.pop(key) for key in END2END_EXTRA_OPTIONS if key in options}
    adaptation = AdaptationConfig.from_options(options, "train")
    return End2EndItemEncoder.from_encoder(create_encoder(feature.encoder, **feature.options), catalog, feature_cache,
                                           adaptation, progress=progress, **extra)
