"""The trainable top of a text tower over cached lower-layer states of a whole catalogue.

:class:`CachedTextTower` encodes every catalogue item once with the frozen lower layers
(through the feature store, so a rerun reads them back), keeps those states in memory,
and per step runs only the trainable top for the rows asked for.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prismrec.adapt.adapters import AdaptationConfig, build_tower
from prismrec.adapt.text_tower import LowerLayerEncoder, SplitTextTower
from prismrec.encoders.text import SentenceTransformerEncoder


def tower_folder(encoder, what: str) -> Path:
    """The model folder of a text encoder the trainable tower can load, or a clear error.

    That is a sentence-transformers / BERT folder (``text:minilm``, ``text:<folder>``) or a
    Hugging Face CLIP folder (``clip-text:<folder>``).
    """
    if isinstance(encoder, SentenceTransformerEncoder):
        return encoder.model_path
    backend = getattr(encoder, "backend", None)
    if getattr(encoder, "modality", "") == "text" and getattr(backend, "kind", "") == "hf" and backend.folder:
        return backend.folder
    raise ValueError(f"{what} adapts a local text tower (text:minilm, text:<folder> or a Hugging Face "
                     f"clip-text:<folder>), but got encoder {getattr(encoder, 'name', type(encoder).__name__)!r}")


class CachedTextTower(nn.Module):
    """``forward(rows) -> [b, h]`` normalised text vectors of catalogue rows, with gradients.

    Rows without text give zero vectors (and no gradient). Only the tower's trainable
    tensors are parameters of this module; the cached states are plain tensors that
    :meth:`fresh_copy` shares instead of copying.

    Example:
        >>> tower = CachedTextTower.from_encoder(create_encoder("text:minilm"), catalog, "features",
        ...                                      AdaptationConfig("lora"))  # doctest: +SKIP
        >>> tower(torch.tensor([0, 5])).shape  # doctest: +SKIP
        torch.Size([2, 384])
    """

    def __init__(self, tower: SplitTextTower, hidden: torch.Tensor, mask: torch.Tensor,
                 adaptation: AdaptationConfig) -> None:
        super().__init__()
        self.tower, self.adaptation = tower, adaptation
        self.hidden, self.mask = hidden, mask
        self.has_text = mask.sum(1) > 0

    @classmethod
    def from_encoder(cls, text_encoder, catalog, feature_store: str | Path, config: AdaptationConfig, *,
                     seed: int = 0, progress: bool = False) -> "CachedTextTower":
        """Cut and adapt ``text_encoder``'s model, then cache its lower states for ``catalog``."""
        from prismrec.encoders.store import encode_catalog

        tower = build_tower(tower_folder(text_encoder, f"adaptation {config.adaptation!r}"), config, seed=seed)
        lower = LowerLayerEncoder(text_encoder, tower)
        encoded = encode_catalog(lower, catalog, feature_store, progress=progress)
        hidden, mask = lower.unflatten(encoded.features)
        mask = mask * torch.from_numpy(encoded.mask).float().unsqueeze(1)
        return cls(tower, hidden, mask, config)

    @property
    def dim(self) -> int:
        return self.tower.output_dim

    def __len__(self) -> int:
        return len(self.hidden)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        rows = torch.as_tensor(rows, dtype=torch.int64)
        out = torch.zeros(len(rows), self.dim)
        present = self.has_text[rows]
        if bool(present.any()):
            chosen = rows[present]
            out = out.index_put((present.nonzero().squeeze(1),), self.tower.top(self.hidden[chosen], self.mask[chosen]))
        return out

    @torch.no_grad()
    def encode_all(self, rows: np.ndarray | None = None, batch_size: int = 256) -> torch.Tensor:
        """Vectors of ``rows`` (default: every item), in eval mode and without gradients."""
        rows = torch.arange(len(self)) if rows is None else torch.as_tensor(rows, dtype=torch.int64)
        was_training = self.training
        self.eval()
        try:
            parts = [self(rows[start:start + batch_size]) for start in range(0, len(rows), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)

    def fresh_copy(self) -> "CachedTextTower":
        """A copy with its own trainable tensors that shares the (large, frozen) cached states."""
        memo = {id(self.hidden): self.hidden, id(self.mask): self.mask, id(self.has_text): self.has_text}
        memo.update({id(part): part for part in self.tower._frozen})  # the frozen layers are shared too
        return copy.deepcopy(self, memo)
