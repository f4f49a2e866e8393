"""The VIP5-style network: a T5 backbone, whole-word embeddings and image tokens.

Input embeddings are ``token embedding + whole-word embedding``; image slots are
replaced by the mapping network's output for their item. The backbone may carry
bottleneck adapters, LoRA (in place, through PEFT) or a PEFT prompt embedding that is
prepended to the encoder input (see :mod:`prismrec.foundation.adapters`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from prismrec.foundation.tokens import MAX_WHOLE_WORDS, ImageTokenMapper


class FoundationModel(nn.Module):
    """T5 + whole-word embeddings + an image mapping network over ``item_image_features``.

    Example:
        >>> from prismrec.foundation.backbone import build_t5
        >>> model = FoundationModel(build_t5("tiny", vocab_size=50))
        >>> batch = {"input_ids": torch.tensor([[5, 6, 1]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
        ...          "word_ids": torch.zeros(1, 3, dtype=torch.long), "image_items": torch.full((1, 3), -1),
        ...          "image_slots": torch.full((1, 3), -1),
        ...          "labels": torch.tensor([[7, 1]])}
        >>> model.loss(batch).item() > 0
        True
    """

    def __init__(self, backbone, *, item_image_features: np.ndarray | None = None, n_image_tokens: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        d_model = backbone.config.d_model
        self.whole_word = nn.Embedding(MAX_WHOLE_WORDS, d_model)
        nn.init.normal_(self.whole_word.weight, std=0.02)
        self.prompt_embedding: nn.Module | None = None  # set by PEFT prompt tuning
        self.image_mapper = None
        if item_image_features is not None and n_image_tokens > 0:
            features = torch.as_tensor(np.nan_to_num(item_image_features), dtype=torch.float32)
            self.register_buffer("item_image_features", features)
            self.image_mapper = ImageTokenMapper(features.shape[1], d_model, n_image_tokens)

    def input_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds = self.backbone.get_input_embeddings()(batch["input_ids"]) + self.whole_word(batch["word_ids"])
        slots = batch["image_items"] >= 0
        if self.image_mapper is not None and slots.any():
            rows, cols = torch.nonzero(slots, as_tuple=True)
            mapped = self.image_mapper(self.item_image_features[batch["image_items"][rows, cols]])
            embeds = embeds.clone()
            embeds[rows, cols] = mapped[torch.arange(len(rows)), batch["image_slots"][rows, cols]]
        return embeds

    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[BaseModelOutput, torch.Tensor]:
        """Encoder output and its attention mask (virtual prompt tokens included when tuned)."""
        embeds, mask = self.input_embeddings(batch), batch["attention_mask"]
        if self.prompt_embedding is not None:
            n_virtual = self.prompt_embedding.embedding.num_embeddings
            prompt = self.prompt_embedding(torch.arange(n_virtual, device=embeds.device))
            embeds = torch.cat([prompt.unsqueeze(0).expand(len(embeds), -1, -1), embeds], dim=1)
            mask = torch.cat([torch.ones(len(mask), n_virtual, dtype=mask.dtype, device=mask.device), mask], dim=1)
        hidden = self.backbone.get_encoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return BaseModelOutput(last_hidden_state=hidden), mask

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token cross-entropy of ``labels`` (-100 = ignore) given the prompt."""
        encoded, mask = self.encode(batch)
        return self.backbone(encoder_outputs=encoded, attention_mask=mask, labels=batch["labels"]).loss

    def decoder_log_probs(self, encoded: BaseModelOutput, mask: torch.Tensor,
                          decoder_input_ids: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[B, T, vocab]`` of the next token after each decoder prefix."""
        logits = self.backbone(encoder_outputs=encoded, attention_mask=mask,
                               decoder_input_ids=decoder_input_ids).logits
        return torch.log_softmax(logits.float(), dim=-1)
