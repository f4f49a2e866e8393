"""Training modes shared by models: frozen, finetuned (in-domain adaptation) and end2end.

* :mod:`prismrec.adapt.text_tower`: a BERT-style text tower cut into frozen (cached) lower
  layers and a trainable top;
* :mod:`prismrec.adapt.adapters`: LoRA, bottleneck adapters, prompt tuning or full tuning
  of the top layers (PEFT where PEFT has the method);
* :mod:`prismrec.adapt.finetune`: the adapted tower inside ``align`` training;
* :mod:`prismrec.adapt.end2end`: the adapted tower as a module whose parameters join a
  recommender's optimiser.
"""
from prismrec.adapt.adapters import ADAPTATIONS, AdaptationConfig, BottleneckAdapter, apply_adaptation, build_tower
from prismrec.adapt.text_tower import LowerLayerEncoder, SplitTextTower

ENCODER_MODES = ("frozen", "finetuned", "end2end")

__all__ = ["ADAPTATIONS", "ENCODER_MODES", "AdaptationConfig", "BottleneckAdapter", "LowerLayerEncoder",
           "SplitTextTower", "apply_adaptation", "build_tower"]
