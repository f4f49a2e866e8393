"""From rendered prompts to model inputs: id tokens, image tokens and whole-word ids.

Each item in a prompt becomes its id tokens, followed by ``n_image_tokens`` image slots
(``<img>``) that the :class:`ImageTokenMapper` fills from the item's image feature. All
tokens of the k-th item in a prompt carry whole-word id k (others 0), so the model sees
which tokens form one item. An item without an image feature keeps its image slots
masked out (attention mask 0), so the layout never depends on missing data.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from prismrec.foundation.prompts import ItemSlot

IMAGE_TOKEN = "<img>"
MAX_WHOLE_WORDS = 128


class PromptTruncated(UserWarning):
    """Prompts were longer than the model's limit; the oldest history items were dropped."""


class ImageTokenMapper(nn.Module):
    """Mapping network: image feature ``[d_image]`` -> ``n_tokens`` embeddings ``[n, d_model]``.

    An MLP, then LayerNorm (VIP5's visual projection).

    Example:
        >>> mapper = ImageTokenMapper(image_dim=6, d_model=4, n_tokens=2)
        >>> mapper(torch.zeros(3, 6)).shape
        torch.Size([3, 2, 4])
    """

    def __init__(self, image_dim: int, d_model: int, n_tokens: int = 2) -> None:
        super().__init__()
        self.n_tokens, self.d_model = n_tokens, d_model
        self.mlp = nn.Sequential(nn.Linear(image_dim, d_model), nn.GELU(), nn.Linear(d_model, n_tokens * d_model))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(features).view(len(features), self.n_tokens, self.d_model))


class PromptEncoder:
    """Turns prompt segments into token ids, whole-word ids and image slots.

    ``item_codes`` is :attr:`ItemIndex.codes`; ``has_image`` a bool per item (None: no
    images at all, then no image slots are made).

    Example:
        >>> encoder = PromptEncoder(tokenizer, index, n_image_tokens=2, has_image=mask)  # doctest: +SKIP
        >>> batch = encoder.collate([encoder.source(segments)], [encoder.item_target(3)])  # doctest: +SKIP
    """

    def __init__(self, tokenizer, item_index, *, n_image_tokens: int = 2, has_image: np.ndarray | None = None,
                 max_length: int = 256) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        self.n_image_tokens = n_image_tokens if has_image is not None else 0
        self.has_image = has_image
        self.pad_id, self.eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.item_tokens = [tokenizer.convert_tokens_to_ids(item_index.tokens_of(i)) for i in range(item_index.n_items)]
        unknown = [i for i, ids in enumerate(self.item_tokens) if tokenizer.unk_token_id in ids]
        if unknown:
            raise ValueError(f"the tokenizer lacks the id tokens of {len(unknown)} items (first: item {unknown[0]}, "
                             f"{item_index.tokens_of(unknown[0])}); it was made for another id scheme")
        self._text_cache: dict[str, list[int]] = {}
        self.truncated = 0

    def text_ids(self, text: str) -> list[int]:
        if text not in self._text_cache:
            # item tokens separate words already: no lone word-boundary tokens around them
            self._text_cache[text] = self.tokenizer.encode(text.strip(), add_special_tokens=False) if text.strip() else []
        return self._text_cache[text]

    def source(self, segments) -> tuple[list[int], list[int], list[int], list[int]]:
        """``(token ids, whole-word ids, image item, image slot)`` per token, ending in ``</s>``.

        Image item and slot are -1 except on an item's ``n_image_tokens`` image slots,
        which hold the item and the slot number 0, 1, ...
        """
        ids, words, images, slots = [], [], [], []
        n_items = 0
        for segment in segments:
            if isinstance(segment, ItemSlot):
                n_items += 1
                word = min(n_items, MAX_WHOLE_WORDS - 1)
                tokens = self.item_tokens[segment.item] + [self.image_id] * self.n_image_tokens
                ids += tokens
                words += [word] * len(tokens)
                n_id = len(tokens) - self.n_image_tokens
                images += [-1] * n_id + [segment.item] * self.n_image_tokens
                slots += [-1] * n_id + list(range(self.n_image_tokens))
            else:
                tokens = self.text_ids(segment)
                ids += tokens
                words += [0] * len(tokens)
                images += [-1] * len(tokens)
                slots += [-1] * len(tokens)
        return ids + [self.eos_id], words + [0], images + [-1], slots + [-1]

    def fitted_source(self, render_with_history, history: np.ndarray):
        """Encode ``render_with_history(history)``, dropping the oldest items until it fits."""
        history = np.asarray(history)
        start = 0
        encoded = self.source(render_with_history(history))
        per_item = len(self.item_tokens[0]) + self.n_image_tokens + len(self.text_ids(" , "))
        while len(encoded[0]) > self.max_length and start < len(history):
            excess = len(encoded[0]) - self.max_length
            start = min(len(history), start + max(1, excess // per_item))
            encoded = self.source(render_with_history(history[start:]))
        if start:
            self.truncated += 1
        if len(encoded[0]) > self.max_length:
            raise ValueError(f"a prompt without history has {len(encoded[0])} tokens, more than the model's "
                             f"limit max_length={self.max_length}")
        return encoded

    def warn_truncated(self) -> None:
        """Emit one counted warning for the prompts truncated since the last call."""
        if self.truncated:
            warnings.warn(f"{self.truncated} prompts were longer than max_length={self.max_length} tokens; "
                          f"their oldest history items were dropped", PromptTruncated, stacklevel=2)
            self.truncated = 0

    def item_target(self, item: int) -> list[int]:
        return list(self.item_tokens[item]) + [self.eos_id]

    def text_target(self, text: str, max_tokens: int = 32) -> list[int]:
        return self.text_ids(text)[:max_tokens] + [self.eos_id]

    def collate(self, sources, targets=None) -> dict[str, torch.Tensor]:
        """Pad a batch: ``input_ids, attention_mask, word_ids, image_items, image_slots`` (+ ``labels``, -100 padded)."""
        width = max(len(s[0]) for s in sources)
        batch = {
            "input_ids": torch.full((len(sources), width), self.pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(sources), width), dtype=torch.long),
            "word_ids": torch.zeros((len(sources), width), dtype=torch.long),
            "image_items": torch.full((len(sources), width), -1, dtype=torch.long),
            "image_slots": torch.full((len(sources), width), -1, dtype=torch.long),
        }
        for row, (ids, words, images, slots) in enumerate(sources):
            n = len(ids)
            batch["input_ids"][row, :n] = torch.tensor(ids)
            batch["word_ids"][row, :n] = torch.tensor(words)
            batch["image_items"][row, :n] = torch.tensor(images)
            batch["image_slots"][row, :n] = torch.tensor(slots)
            batch["attention_mask"][row, :n] = 1
            if self.has_image is not None:
                missing = [k for k, item in enumerate(images) if item >= 0 and not self.has_image[item]]
                batch["attention_mask"][row, missing] = 0
        if targets is not None:
            labels = torch.full((len(targets), max(len(t) for t in targets)), -100, dtype=torch.long)
            for row, target in enumerate(targets):
                labels[row, : len(target)] = torch.tensor(target)
            batch["labels"] = labels
        return batch
