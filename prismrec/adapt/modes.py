"""The ``encoder_mode`` switch of a feature: ``frozen | finetuned | end2end``.

* ``frozen``: features come from the store (the encoder as shipped);
* ``finetuned``: the encoder is adapted in-domain first by ``align`` contrastive training,
  then re-encodes the catalogue under a new encoder id:

  - ``text:`` (a BERT-style sentence-transformers tower) or ``clip-text:`` (a Hugging Face
    CLIP folder's text tower): its top layers are adapted (``adaptation: lora | adapter |
    prompt | full``, default ``lora``); the feature becomes ``adapted-text:<dir>`` (same
    width as the encoder);
  - ``image:``, ``clip-image:``, ``clip:``: the alignment trains heads over the frozen image
    tower (image features pair with ``train.text_encoder``, default ``text:minilm``;
    ``clip:`` pairs its own two towers and adapts its text tower, default ``lora``); the
    feature becomes ``align:<dir>`` with the matching view (shared-space vectors);
  - ``align`` / ``align:<dir>``: the alignment itself, with ``adaptation`` default ``lora``;
* ``end2end``: the model's recommendation loss trains the encoder's trainable part
  (:mod:`prismrec.adapt.end2end`): a ``text:`` or ``clip-text:`` tower's adapted top (plus an optional
  ``head_dim`` head), or, for any other encoder, a head over its frozen vectors (square and
  identity-initialised unless ``head_dim`` is given). Only models with
  ``set_item_feature_modules`` accept it.

Example:
    >>> from prismrec.config import FeatureConfig
    >>> check_encoder_mode("x", FeatureConfig(encoder="audio:logmel", encoder_mode="finetuned"))
    Traceback (most recent call last):
    ...
    ValueError: features.x: encoder_mode finetuned adapts text, image or CLIP encoders in-domain; got 'audio:logmel'
"""
from __future__ import annotations

import inspect
from dataclasses import fields

ENCODER_MODES = ("frozen", "finetuned", "end2end")
END2END_EXTRA_OPTIONS = ("head_dim", "seed")
#: finetuned features aligned through heads: spec prefix -> (tower role, align view); other
#: registered encoders (a plugin's) get the role of their modality when the run starts
_ALIGNED_BY_HEADS = {"image:": ("image", "image"), "clip-image:": ("image", "image"), "clip:": ("both", "both")}
#: encoders that no alignment can adapt
_NOT_ALIGNABLE = ("audio:", "video:", "dataset:", "fusion")


def _kind(encoder: str) -> str:
    if encoder.startswith(("text:", "clip-text:")):
        return "text"
    if encoder == "align" or encoder.startswith("align:"):
        return "align"
    return "other" if encoder.startswith(_NOT_ALIGNABLE) else "heads"


def _role(encoder: str) -> tuple[str, str]:
    """``(tower role, align view)`` of a feature aligned through heads."""
    for prefix, role in _ALIGNED_BY_HEADS.items():
        if encoder.startswith(prefix):
            return role
    from prismrec.encoders.registry import create_encoder

    modality = create_encoder(encoder).modality
    if modality not in ("text", "image"):
        raise ValueError(f"encoder_mode finetuned aligns text or image encoders; {encoder!r} reads {modality!r}")
    return modality, modality


def check_encoder_mode(name: str, feature) -> tuple[set, str] | None:
    """Check ``feature.encoder_mode`` against its encoder; ``(accepted train options, owner)`` or ``None`` (frozen)."""
    mode, kind = feature.encoder_mode, _kind(str(feature.encoder))
    if mode not in ENCODER_MODES:
        raise ValueError(f"features.{name}.encoder_mode must be one of {', '.join(ENCODER_MODES)}, got {mode!r}")
    if mode == "frozen":
        return None
    if mode == "end2end":
        if kind != "text":
            return set(END2END_EXTRA_OPTIONS), "an end2end head (head_dim, seed)"
        from prismrec.adapt.adapters import AdaptationConfig

        accepted = {f.name for f in fields(AdaptationConfig)} | set(END2END_EXTRA_OPTIONS)
        return accepted, "end2end (prismrec.adapt.AdaptationConfig options, head_dim, seed)"
    if kind == "other":
        raise ValueError(f"features.{name}: encoder_mode finetuned adapts text, image or CLIP encoders in-domain; "
                         f"got {feature.encoder!r}")
    from prismrec.encoders.align_train import train_alignment

    accepted = set(inspect.signature(train_alignment).parameters) - {"catalog", "output_dir", "feature_store", "progress"}
    if kind == "text":  # the feature's encoder is the text tower, its template the tower's
        accepted -= {"text_encoder", "text_template"}
    if kind != "align":
        extra = sorted(set(feature.options) - {"template"})
        if extra:
            raise ValueError(f"features.{name}.options: {extra} cannot be used with encoder_mode finetuned (the "
                             "adapted encoder takes only 'template'; put tower options in train)")
    return accepted, "train_alignment"


def alignment_run(feature) -> tuple[dict, str, dict | None] | None:
    """``(train_alignment options, resulting encoder prefix, its options)`` when ``feature`` trains an alignment.

    The options are ``None`` when the feature's own options apply (an ``align`` feature).

    Example:
        >>> from prismrec.config import FeatureConfig
        >>> alignment_run(FeatureConfig(encoder="text:minilm", encoder_mode="finetuned", train={"epochs": 2}))
        ({'text_encoder': 'text:minilm', 'adaptation': 'lora', 'epochs': 2}, 'adapted-text', {})
        >>> alignment_run(FeatureConfig(encoder="clip:/m/clip", encoder_mode="finetuned"))[0]
        {'text_encoder': 'clip-text:/m/clip', 'image_encoder': 'clip-image:/m/clip', 'adaptation': 'lora'}
    """
    kind, mode, train = _kind(str(feature.encoder)), feature.encoder_mode, dict(feature.train or {})
    template = {"text_template": feature.options["template"]} if "template" in feature.options else {}
    if kind == "align" and (feature.train is not None or mode == "finetuned"):
        return {**({"adaptation": "lora"} if mode == "finetuned" else {}), **train}, "align", None
    if mode != "finetuned" or kind == "other":
        return None
    if kind == "text":
        return {"text_encoder": feature.encoder, "adaptation": "lora", **template, **train}, "adapted-text", {}
    role, view = _role(feature.encoder)
    folder = feature.encoder.partition(":")[2]
    towers = {"both": {"text_encoder": f"clip-text:{folder}", "image_encoder": f"clip-image:{folder}"},
              "text": {"text_encoder": feature.encoder}, "image": {"image_encoder": feature.encoder}}[role]
    clash = sorted(set(towers) & set(train))
    if clash:
        raise ValueError(f"train.{clash[0]}: the {role} tower of this finetuned feature is its encoder "
                         f"{feature.encoder!r}; name only the other tower")
    default = {"adaptation": "lora"} if role == "both" else {}
    return {**towers, **default, **(template if role != "image" else {}), **train}, "align", {"view": view}


def end2end_encoder(feature, catalog, feature_cache: str, *, progress: bool = False):
    """The :class:`~prismrec.adapt.end2end.End2EndItemEncoder` of an ``end2end`` feature over ``catalog``."""
    from prismrec.adapt.adapters import AdaptationConfig
    from prismrec.adapt.end2end import End2EndItemEncoder, FrozenItemFeatures
    from prismrec.encoders.registry import create_encoder
    from prismrec.encoders.store import encode_catalog

    options = dict(feature.train or {})
    extra = {key: options.pop(key) for key in END2END_EXTRA_OPTIONS if key in options}
    encoder = create_encoder(feature.encoder, **feature.options)
    if _kind(str(feature.encoder)) != "text":  # any other encoder: a trainable head over its frozen vectors
        import torch

        base = FrozenItemFeatures(torch.from_numpy(encode_catalog(encoder, catalog, feature_cache,
                                                                  progress=progress).features))
        return End2EndItemEncoder(base, head_dim=extra.get("head_dim") or base.dim, seed=extra.get("seed", 0))
    adaptation = AdaptationConfig.from_options(options, "train")
    return End2EndItemEncoder.from_encoder(encoder, catalog, feature_cache, adaptation, progress=progress, **extra)


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
