"""Adaptations of a text tower's top layers: ``none | lora | adapter | prompt | full``.

* ``lora``: PEFT's :class:`~peft.LoraConfig` on the attention ``query`` and ``value``
  projections of the top layers (``inject_adapter_in_model``; parameters ``lora_*``).
* ``adapter``: a Houlsby-style bottleneck adapter after each top layer's feed-forward
  output projection. PEFT ships no bottleneck adapter for BERT (its IA3 rescales
  activations, it adds no bottleneck), so :class:`BottleneckAdapter` is written here in
  PEFT's style: it wraps ``base_layer`` and its parameters carry the ``adapter_`` prefix.
* ``prompt``: PEFT's prompt-tuning embedding (:class:`~peft.PromptTuningConfig`); its
  virtual tokens are prepended to the hidden states entering the first trainable layer
  (deep prompt tuning, as P-tuning v2 places prompts per layer), so the frozen lower
  layers stay cacheable. With ``trainable_layers`` equal to the depth it is input-level
  prompt tuning over the (frozen) embeddings.
* ``full``: every weight of the top ``trainable_layers`` layers (set it to the tower's
  depth to train every transformer layer; the embedding table stays frozen, it is what
  the cache holds).

Only the trainable tensors are ever saved (:meth:`SplitTextTower.trainable_state_dict`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from prismrec.adapt.text_tower import SplitTextTower

ADAPTATIONS = ("none", "lora", "adapter", "prompt", "full")
#: name fragments of the trainable parameters of each adaptation
TRAINABLE_PREFIXES = {"lora": ("lora_",), "adapter": ("adapter_",), "prompt": ("prompt.",), "full": ("",)}


@dataclass
class AdaptationConfig:
    """What is trained in the text tower and how (see the module docstring).

    Example:
        >>> AdaptationConfig(adaptation="lora", trainable_layers=1).frozen_layers(6)
        5
    """

    adaptation: str = "lora"
    trainable_layers: int = 1
    max_seq_length: int = 128
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    adapter_bottleneck: int = 32
    prompt_tokens: int = 8
    #: learning rate of the tower's tensors (default: the one of the heads / the recommender)
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {self.adaptation!r}")
        for name in ("trainable_layers", "max_seq_length", "lora_rank", "adapter_bottleneck", "prompt_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"adaptation option {name} must be a positive integer, got {value!r}")

    @classmethod
    def from_options(cls, options: dict | None, where: str = "adaptation options") -> "AdaptationConfig":
        """Build from a plain mapping; an unknown key is named with the accepted ones."""
        options = dict(options or {})
        accepted = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {unknown}; accepted: {sorted(accepted)}")
        return cls(**options)

    def frozen_layers(self, n_layers: int) -> int:
        """Layers below the trainable top (all of them when nothing is adapted)."""
        if self.adaptation == "none":
            return n_layers
        if self.trainable_layers > n_layers:
            raise ValueError(f"trainable_layers={self.trainable_layers}, but the text tower has only {n_layers} layers")
        return n_layers - self.trainable_layers

    def to_dict(self) -> dict:
        return asdict(self)


class BottleneckAdapter(nn.Module):
    """``y = base(x) + up(gelu(down(base(x))))``; ``up`` starts at zero, so the layer starts unchanged.

    Example:
        >>> layer = BottleneckAdapter(nn.Linear(4, 4), bottleneck=2)
        >>> x = torch.ones(1, 4)
        >>> torch.equal(layer(x), layer.base_layer(x))
        True
    """

    def __init__(self, base_layer: nn.Linear, bottleneck: int) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter_down = nn.Linear(base_layer.out_features, bottleneck)
        self.adapter_up = nn.Linear(bottleneck, base_layer.out_features)
        nn.init.zeros_(self.adapter_up.weight)
        nn.init.zeros_(self.adapter_up.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.base_layer(inputs)
        return hidden + self.adapter_up(nn.functional.gelu(self.adapter_down(hidden)))


class _TopLayers(nn.Module):
    """Container PEFT can inject into (it walks ``named_modules`` of a module with a ``config``)."""

    def __init__(self, layers: nn.ModuleList, config) -> None:
        super().__init__()
        self.layers, self.config = layers, config


def apply_adaptation(tower: SplitTextTower, config: AdaptationConfig, *, seed: int = 0) -> SplitTextTower:
    """Add the adaptation to ``tower``'s top layers (in place, seeded) and mark what trains.

    Example:
        >>> tower = apply_adaptation(SplitTextTower.from_folder(path, frozen_layers=1, max_seq_length=32),
        ...                          AdaptationConfig("lora", trainable_layers=1))  # doctest: +SKIP
        >>> sorted(tower.trainable_state_dict())[:1]  # doctest: +SKIP
        ['top_layers.0.attention.self.query.lora_A.default.weight']
    """
    if config.adaptation == "none":
        return tower
    if tower.frozen_layers != config.frozen_layers(tower.n_layers):
        raise ValueError(f"the tower is cut after layer {tower.frozen_layers}, but {config.adaptation} on "
                         f"{config.trainable_layers} layer(s) needs the cut after {config.frozen_layers(tower.n_layers)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if config.adaptation == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            targets = ["q_proj", "v_proj"] if tower.causal else ["query", "value"]  # CLIP's names, BERT's names
            inject_adapter_in_model(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                                               lora_dropout=config.lora_dropout, target_modules=targets),
                                    _TopLayers(tower.top_layers, tower.config))
        elif config.adaptation == "adapter":
            for layer in tower.top_layers:
                if tower.causal:  # CLIP: after the feed-forward's output projection
                    layer.mlp.fc2 = BottleneckAdapter(layer.mlp.fc2, config.adapter_bottleneck)
                else:
                    layer.output.dense = BottleneckAdapter(layer.output.dense, config.adapter_bottleneck)
        elif config.adaptation == "prompt":
            from peft import PromptTuningConfig
            from peft.tuners.prompt_tuning import PromptEmbedding

            prompt_config = PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=config.prompt_tokens,
                                               token_dim=tower.hidden_size, num_transformer_submodules=1,
                                               prompt_tuning_init="RANDOM")
            tower.prompt = PromptEmbedding(prompt_config, word_embeddings=None)
    prefixes = TRAINABLE_PREFIXES[config.adaptation]
    for name, parameter in tower.named_parameters():
        parameter.requires_grad_(any(prefix in name for prefix in prefixes))
    return tower


def build_tower(model_folder, config: AdaptationConfig, *, seed: int = 0, n_layers: int | None = None) -> SplitTextTower:
    """Load the tower cut for ``config`` and adapt it (``n_layers``: the depth, when known)."""
    if n_layers is None:
        from prismrec.adapt.text_tower import is_clip_folder, read_sentence_transformer_folder
        from transformers import AutoConfig

        clip = is_clip_folder(model_folder)
        transformer = Path(model_folder) if clip else read_sentence_transformer_folder(model_folder)[0]
        model_config = AutoConfig.from_pretrained(str(transformer), local_files_only=True)
        n_layers = int((model_config.text_config if clip else model_config).num_hidden_layers)
    tower = SplitTextTower.from_folder(model_folder, frozen_layers=config.frozen_layers(n_layers),
                                       max_seq_length=config.max_seq_length)
    return apply_adaptation(tower, config, seed=seed)
