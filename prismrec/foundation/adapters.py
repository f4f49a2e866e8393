"""Parameter-efficient tuning of the foundation model: adapters, LoRA, prompt tuning, full.

- ``adapters``: the backbone is frozen; bottleneck adapters (VIP5 / Houlsby: down-project
  by ``reduction``, ReLU, up-project, residual) wrap the self-attention, cross-attention
  and feed-forward of every T5 block, and LayerNorms are tuned too. Written here
  because PEFT has no bottleneck adapter for T5; it follows PEFT's shape: a config
  dataclass and a layer that wraps ``base_layer``, parameters named ``adapter_*``.
- ``lora`` and ``prompt``: PEFT's ``LoraConfig`` / ``PromptTuningConfig``.
- ``full``: every parameter trains (the baseline).

In every mode the parts the backbone never had train: the image mapping network, the
whole-word embeddings, and the embedding rows of the item id tokens (a gradient mask
keeps the other rows of the shared embedding fixed).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

MODES = ("adapters", "lora", "prompt", "full")


@dataclass
class TuningConfig:
    """How to tune: ``mode`` in :data:`MODES` and its sizes."""

    mode: str = "adapters"
    reduction: int = 8
    lora_rank: int = 8
    n_virtual_tokens: int = 20

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown tuning mode {self.mode!r}; choose one of {list(MODES)}")
        if self.reduction < 1 or self.lora_rank < 1 or self.n_virtual_tokens < 1:
            raise ValueError(f"reduction, lora_rank and n_virtual_tokens must be positive, got {self}")


class BottleneckAdapter(nn.Module):
    """Wraps ``base_layer``; adds ``up(relu(down(h)))`` to its (first) output.

    ``adapter_up`` starts at zero, so a fresh adapter leaves the backbone's output unchanged.

    Example:
        >>> layer = BottleneckAdapter(nn.Linear(16, 16), d_model=16, reduction=8)
        >>> torch.equal(layer(torch.ones(2, 16)), layer.base_layer(torch.ones(2, 16)))
        True
    """

    def __init__(self, base_layer: nn.Module, d_model: int, reduction: int = 8) -> None:
        super().__init__()
        self.base_layer = base_layer
        hidden = max(1, d_model // reduction)
        self.adapter_down = nn.Linear(d_model, hidden)
        self.adapter_up = nn.Linear(hidden, d_model)
        nn.init.zeros_(self.adapter_up.weight)
        nn.init.zeros_(self.adapter_up.bias)

    def adapt(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.adapter_up(torch.relu(self.adapter_down(hidden)))

    def forward(self, *args, **kwargs):
        output = self.base_layer(*args, **kwargs)
        if isinstance(output, tuple):
            return (self.adapt(output[0]), *output[1:])
        return self.adapt(output)


def add_bottleneck_adapters(t5, reduction: int) -> int:
    """Wrap self-attention, cross-attention and feed-forward of every block; returns how many."""
    d_model, count = t5.config.d_model, 0
    for stack in (t5.encoder, t5.decoder):
        for block in stack.block:
            for sublayer in block.layer:
                for name in ("SelfAttention", "EncDecAttention", "DenseReluDense"):
                    if hasattr(sublayer, name):
                        setattr(sublayer, name, BottleneckAdapter(getattr(sublayer, name), d_model, reduction))
                        count += 1
    return count


def prepare_tuning(model, config: TuningConfig, item_token_ids: list[int]) -> dict:
    """Set ``requires_grad`` for ``config.mode`` on a :class:`FoundationModel` (in place).

    Returns ``{"mode", "trainable_parameters", "total_parameters", "trainable_share"}``.

    Example:
        >>> info = prepare_tuning(model, TuningConfig("adapters"), item_token_ids)  # doctest: +SKIP
        >>> info["trainable_share"] < 0.1  # doctest: +SKIP
        True
    """
    t5 = model.backbone
    if config.mode == "adapters":
        add_bottleneck_adapters(t5, config.reduction)
    elif config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0,
                          target_modules=["q", "k", "v", "o", "wi", "wo"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # PEFT's own use of a deprecated transformers name
            model.backbone = get_peft_model(t5, lora).get_base_model()  # LoRA layers sit in t5's modules
    elif config.mode == "prompt":
        from peft import PromptTuningConfig, TaskType, get_peft_model

        prompt = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=config.n_virtual_tokens)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model.prompt_embedding = get_peft_model(t5, prompt).prompt_encoder["default"]
    for name, parameter in model.named_parameters():
        parameter.requires_grad = config.mode == "full" or _is_tuned(name, config.mode)
    rows = _item_rows(model, item_token_ids, full=config.mode == "full")
    return trainable_report(model, config.mode, rows)


def _is_tuned(name: str, mode: str) -> bool:
    if not name.startswith("backbone."):
        return True  # mapping network, whole-word embeddings, prompt embedding
    if name == "backbone.shared.weight":
        return True  # only the item-token rows receive gradient (see _item_rows)
    if mode == "adapters":
        return "adapter_" in name or "layer_norm" in name
    return mode == "lora" and "lora_" in name


def _item_rows(model, item_token_ids: list[int], *, full: bool) -> int:
    """Mask the shared embedding's gradient to the item-token rows; returns the rows that train."""
    weight = model.backbone.get_input_embeddings().weight
    if full:
        return weight.shape[0]
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype)
    keep[torch.as_tensor(sorted(set(item_token_ids)), dtype=torch.long)] = 1.0
    weight.register_hook(lambda grad: grad * keep.to(grad.device, grad.dtype))  # the network may move after this
    return int(keep.sum())


def trainable_report(model, mode: str, embedding_rows: int) -> dict:
    """Trainable and total parameter counts (the shared embedding counts only its tuned rows)."""
    embedding = model.backbone.get_input_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad and p is not embedding)
    trainable += embedding_rows * embedding.shape[1]
    return {"mode": mode, "trainable_parameters": int(trainable), "total_parameters": int(total),
            "trainable_share": trainable / total}


def optimiser_parameters(model) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
