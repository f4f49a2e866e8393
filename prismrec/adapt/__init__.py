"""Training modes shared by models: frozen, finetuned (in-domain adaptation) and end2end.

* :mod:`prismrec.adapt.text_tower`: a BERT-style text tower cut into frozen (cached) lower
  layers and a trainable top;
* :mod:`prismrec.adapt.adapters`: LoRA, bottleneck adapters, prompt tuning or full tuning
  of the top layers (PEFT where PEFT has the method);
* :mod:`prismrec.adapt.finetune`: the adapted tower inside ``align`` training, and as an encoder;
* :mod:`prismrec.adapt.end2end`: the adapted tower as a module whose parameters join a
  recommender's optimiser;
* :mod:`prismrec.adapt.modes`: the ``encoder_mode`` switch of a config feature.

Names load lazily (``from prismrec.adapt import AdaptationConfig``), so reading a config
does not import torch.
"""
from __future__ import annotations

import importlib

from prismrec.adapt.modes import ENCODER_MODES

_LAZY = {"ADAPTATIONS": "adapters", "AdaptationConfig": "adapters", "BottleneckAdapter": "adapters",
         "apply_adaptation": "adapters", "build_tower": "adapters", "LowerLayerEncoder": "text_tower",
         "SplitTextTower": "text_tower", "End2EndItemEncoder": "end2end", "CachedTextTower": "cached"}

__all__ = ["ENCODER_MODES", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"prismrec.adapt.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'prismrec.adapt' has no attribute {name!r}")
