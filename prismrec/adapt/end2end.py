"""End-to-end training: the recommendation loss trains the encoder's trainable top.

:class:`End2EndItemEncoder` holds the cached frozen lower-layer states of every catalogue
item (see :class:`~prismrec.adapt.cached.CachedTextTower`) and, per step, runs only the
trainable top (LoRA / adapter / prompt / top layers, plus an optional linear head) for the
batch's items: ``forward(item_indices) -> [b, d]``, with gradients. Its ``parameters()``
join the recommender's optimiser; nothing is detached and nothing runs under ``no_grad``
while training (the public code of the LMM-encoders paper does both, so its "end-to-end"
never reaches the encoder).

A model opts in with ``set_item_feature_modules({name: module})`` (VBPR does);
:func:`attach_item_feature_modules` refuses, before any training, a model that cannot.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from prismrec.adapt.adapters import AdaptationConfig
from prismrec.adapt.cached import CachedTextTower


class FrozenItemFeatures(nn.Module):
    """A frozen encoder's stored vectors as a module (nothing trainable; a head goes on top).

    Example:
        >>> FrozenItemFeatures(torch.eye(3))(torch.tensor([2])).tolist()
        [[0.0, 0.0, 1.0]]
    """

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.features = features
        self.has_text = features.abs().sum(1) > 0  # rows with content (named as CachedTextTower's)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.features)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.features[torch.as_tensor(rows, dtype=torch.int64)]

    def fresh_copy(self) -> "FrozenItemFeatures":
        return self


class End2EndItemEncoder(nn.Module):
    """Trainable item features from cached lower-layer states: ``forward(item_indices) -> [b, d]``.

    ``text`` is a :class:`CachedTextTower` (its adapted top trains), or a
    :class:`FrozenItemFeatures` of any other encoder, which then needs the head. A square
    head starts as the identity, so training starts from the frozen features.

    Example:
        >>> encoder = End2EndItemEncoder.from_encoder(create_encoder("text:minilm"), catalog, "features",
        ...                                           AdaptationConfig("lora", trainable_layers=1))  # doctest: +SKIP
        >>> VBPR(feature_names=("text",)).set_item_feature_modules({"text": encoder})  # doctest: +SKIP
    """

    def __init__(self, text: CachedTextTower | FrozenItemFeatures, *, head_dim: int | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.text = text
        self.head = None
        if head_dim is not None:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.head = nn.Linear(text.dim, head_dim)
            if head_dim == text.dim:
                with torch.no_grad():
                    self.head.weight.copy_(torch.eye(head_dim))
                    self.head.bias.zero_()
        if not any(parameter.requires_grad for parameter in self.parameters()):
            what = (f"this text tower has adaptation {text.adaptation.adaptation!r}" if hasattr(text, "adaptation")
                    else "this frozen encoder has no trainable part")
            raise ValueError(
                f"encoder_mode end2end needs an encoder with something trainable, but {what} and no head; choose "
                "adaptation lora, adapter, prompt or full (a trainable top), or give head_dim")

    @classmethod
    def from_encoder(cls, text_encoder, catalog, feature_store: str | Path, adaptation: AdaptationConfig, *,
                     head_dim: int | None = None, seed: int = 0, progress: bool = False) -> "End2EndItemEncoder":
        """Cut, adapt and cache ``text_encoder``'s model for ``catalog`` (rows = item indices)."""
        text = CachedTextTower.from_encoder(text_encoder, catalog, feature_store, adaptation, seed=seed,
                                            progress=progress)
        return cls(text, head_dim=head_dim, seed=seed)

    @property
    def dim(self) -> int:
        return self.head.out_features if self.head is not None else self.text.dim

    @property
    def n_items(self) -> int:
        return len(self.text)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [parameter for parameter in self.parameters() if parameter.requires_grad]

    def forward(self, item_indices: torch.Tensor) -> torch.Tensor:
        features = self.text(item_indices)
        return features if self.head is None else self.head(features)

    @torch.no_grad()
    def encode_all(self, batch_size: int = 256) -> torch.Tensor:
        """``[n_items, d]`` features of every item (eval mode, no gradients)."""
        was_training = self.training
        self.eval()
        try:
            rows = torch.arange(self.n_items)
            return torch.cat([self(rows[start:start + batch_size]) for start in range(0, self.n_items, batch_size)])
        finally:
            self.train(was_training)

    def fresh_copy(self) -> "End2EndItemEncoder":
        """An untrained-state copy for another fit (the cached states are shared, not copied)."""
        import copy

        text, self.text = self.text, None
        try:
            clone = copy.deepcopy(self)
        finally:
            self.text = text
        clone.text = text.fresh_copy()
        return clone


class TrainableItemFeatures:
    """A model's fused item features where some named parts come from trainable modules.

    Fixed arrays are normalised once as ``fuse_features`` does; module outputs are
    normalised per batch (``l2`` or ``none``; ``standard`` needs statistics over every item,
    which change at each step, so it is refused).

    Example:
        >>> features = TrainableItemFeatures({"text": array}, ("text",), "l2", {"text": encoder})  # doctest: +SKIP
        >>> features.pair_difference(positives, negatives).shape  # doctest: +SKIP
    """

    def __init__(self, item_features, names, normalization: str, modules: dict[str, nn.Module]) -> None:
        from prismrec.models.vbpr import fuse_features

        if normalization == "standard":
            raise ValueError("feature_normalization 'standard' cannot be used with end-to-end encoders (its column "
                             "statistics change at every step); use 'l2' or 'none'")
        self.modules, self.normalization = dict(modules), normalization
        self.parts = [modules[name] if name in modules else fuse_features(item_features, (name,), normalization)
                      for name in names]
        n_items = len(next(iter(item_features.values())))
        for name, module in self.modules.items():
            if getattr(module, "n_items", n_items) != n_items:
                raise ValueError(f"end-to-end encoder of feature {name!r} covers {module.n_items} items, but the "
                                 f"model trains on {n_items}")
        dims = [part.shape[1] if isinstance(part, torch.Tensor) else part.dim for part in self.parts]
        self.shape = (n_items, sum(dims))

    def parameters(self) -> list[nn.Parameter]:
        return [p for module in self.modules.values() for p in module.parameters() if p.requires_grad]

    def rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Features ``[len(rows), D]`` of item rows; module parts with gradients."""
        parts = []
        for part in self.parts:
            if isinstance(part, torch.Tensor):
                parts.append(part.index_select(0, rows))
                continue
            part.train()
            values = part(rows)
            parts.append(F.normalize(values, dim=1) if self.normalization == "l2" else values)
        return torch.cat(parts, dim=1)

    def pair_difference(self, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``f_i - f_j`` per triplet; each distinct item of the batch goes through the encoder once."""
        unique, inverse = torch.unique(torch.cat([positives, negatives]), return_inverse=True)
        features = self.rows(unique)
        return features[inverse[:len(positives)]] - features[inverse[len(positives):]]

    @torch.no_grad()
    def full(self) -> torch.Tensor:
        """Every item's features with the encoders' current weights (for the published scoring state)."""
        parts = []
        for part in self.parts:
            if isinstance(part, torch.Tensor):
                parts.append(part)
                continue
            values = part.encode_all()
            parts.append(F.normalize(values, dim=1) if self.normalization == "l2" else values)
        return torch.cat(parts, dim=1)


def attach_item_feature_modules(model, modules: dict[str, nn.Module], where: str = "model") -> None:
    """Give ``model`` trainable encoders for some features, or fail before training when it cannot.

    Example:
        >>> attach_item_feature_modules(BPR(), {"text": encoder})  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: model: BPR cannot train an encoder end to end ...
    """
    if not modules:
        return
    if not hasattr(model, "set_item_feature_modules"):
        raise ValueError(f"{where}: {type(model).__name__} cannot train an encoder end to end (encoder_mode end2end "
                         f"for feature(s) {sorted(modules)}); use encoder_mode frozen or finetuned, or a model "
                         "that supports it (vbpr)")
    model.set_item_feature_modules(modules)
