"""Combine per-modality item features into one item vector, with missing modalities masked.

Two tools:

* :func:`fuse`: a fixed rule (``concat``, ``mean`` or ``weighted``) over NumPy arrays, for
  frozen features;
* :class:`LearnedFusion`: a ``torch.nn.Module`` that projects each modality to a shared size
  and mixes them with learned softmax weights, for models that take several modalities.

In both, a modality that is missing for an item (``mask`` False) takes no part in that
item's vector, and an item with no modality at all gets zeros and ``mask`` False.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

FUSION_METHODS = ("concat", "mean", "weighted")


def _check_inputs(features: dict, masks: dict) -> int:
    if not features:
        raise ValueError("fuse() needs at least one modality; got an empty features dict")
    if set(features) != set(masks):
        raise ValueError(f"features and masks name different modalities: {sorted(features)} vs {sorted(masks)}")
    n_items = {name: np.asarray(values).shape[0] for name, values in features.items()}
    if len(set(n_items.values())) != 1:
        raise ValueError(f"modalities have different item counts: {n_items}")
    for name, values in features.items():
        if np.asarray(values).ndim != 2:
            raise ValueError(f"features[{name!r}] must be 2-d [n_items, dim]; got shape {np.shape(values)}")
        if np.asarray(masks[name]).shape != (n_items[name],):
            raise ValueError(f"masks[{name!r}] must have shape ({n_items[name]},); got {np.shape(masks[name])}")
    return next(iter(n_items.values()))


def fuse(
    features: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    method: str = "concat",
    weights: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse named modality features into ``(float32 [n_items, d'], bool mask [n_items])``.

    * ``concat``: blocks side by side in the dict's order (missing blocks are zeros;
      ``weights``, if given, scale each block);
    * ``mean``: the average of the modalities present for each item (equal dims needed);
    * ``weighted``: like ``mean`` with ``weights[name]``, renormalised over the present ones.

    Example:
        >>> text = np.array([[1.0, 0.0], [0.0, 0.0]]); image = np.array([[3.0, 2.0], [4.0, 4.0]])
        >>> fused, mask = fuse({"text": text, "image": image},
        ...                    {"text": np.array([True, False]), "image": np.array([True, True])}, "mean")
        >>> fused.tolist(), mask.tolist()
        ([[2.0, 1.0], [4.0, 4.0]], [True, True])
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method {method!r}; expected one of {FUSION_METHODS}")
    n_items = _check_inputs(features, masks)
    names = list(features)
    present = {name: np.asarray(masks[name], dtype=bool) for name in names}
    # zero the missing rows (they may hold anything, NaN included)
    arrays = {name: np.where(present[name][:, None], np.asarray(features[name], dtype=np.float32), 0.0) for name in names}
    if weights is None:
        if method == "weighted":
            raise ValueError("method='weighted' needs weights, e.g. {'text': 0.7, 'image': 0.3}")
        weights = {name: 1.0 for name in names}
    if set(weights) != set(names):
        raise ValueError(f"weights name {sorted(weights)} but the features are {names}")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must be non-negative; got {weights}")
    mask = np.logical_or.reduce([present[name] for name in names])
    if method == "concat":
        blocks = [arrays[name] * np.float32(weights[name]) for name in names]
        return np.concatenate(blocks, axis=1).astype(np.float32), mask
    dims = {name: arrays[name].shape[1] for name in names}
    if len(set(dims.values())) != 1:
        raise ValueError(f"method={method!r} needs equal dimensions; got {dims} (use 'concat' or LearnedFusion)")
    weight_matrix = np.stack([present[name] * np.float32(weights[name]) for name in names], axis=1)  # [n, m]
    total = weight_matrix.sum(axis=1, keepdims=True)
    weight_matrix = np.divide(weight_matrix, total, out=np.zeros_like(weight_matrix), where=total > 0)
    stacked = np.stack([arrays[name] for name in names], axis=1)  # [n, m, d]
    fused = np.einsum("nm,nmd->nd", weight_matrix, stacked).astype(np.float32)
    return fused.reshape(n_items, -1), mask & (total[:, 0] > 0)


class LearnedFusion(nn.Module):
    """Project each modality to ``output_dim`` and mix them with learned softmax weights.

    ``forward(features, masks)`` takes dicts of tensors ``[n, input_dims[name]]`` and
    bool ``[n]`` (masks default to all present) and returns ``[n, output_dim]``. The
    softmax runs only over the modalities present for each item; items with none get zeros.

    Example:
        >>> import torch
        >>> fusion = LearnedFusion({"text": 384, "image": 1280}, output_dim=64)
        >>> out = fusion({"text": torch.randn(5, 384), "image": torch.randn(5, 1280)},
        ...              {"text": torch.ones(5, dtype=torch.bool), "image": torch.zeros(5, dtype=torch.bool)})
        >>> tuple(out.shape)
        (5, 64)
    """

    def __init__(self, input_dims: dict[str, int], output_dim: int) -> None:
        super().__init__()
        if not input_dims:
            raise ValueError("LearnedFusion needs at least one modality in input_dims")
        self.modalities = list(input_dims)
        self.output_dim = output_dim
        self.projections = nn.ModuleDict({name: nn.Linear(dim, output_dim) for name, dim in input_dims.items()})
        self.modality_logits = nn.Parameter(torch.zeros(len(self.modalities)))

    def forward(self, features: dict, masks: dict | None = None):
        missing = [name for name in self.modalities if name not in features]
        if missing:
            raise KeyError(f"LearnedFusion expects modalities {self.modalities}; missing {missing}")
        projected = torch.stack([self.projections[name](features[name]) for name in self.modalities], dim=1)
        n_items = projected.shape[0]
        if masks is None:
            present = torch.ones(n_items, len(self.modalities), dtype=torch.bool, device=projected.device)
        else:
            present = torch.stack([masks[name].to(torch.bool) for name in self.modalities], dim=1)
            projected = torch.where(present[:, :, None], projected, torch.zeros_like(projected))
        logits = self.modality_logits.expand(n_items, -1).masked_fill(~present, float("-inf"))
        any_present = present.any(dim=1, keepdim=True)
        mix = torch.softmax(logits.masked_fill(~any_present, 0.0), dim=1) * any_present
        return torch.einsum("nm,nmd->nd", mix, projected)

    def modality_weights(self) -> dict[str, float]:
        """The learned mixing weights when every modality is present."""
        weights = torch.softmax(self.modality_logits.detach(), dim=0).tolist()
        return dict(zip(self.modalities, weights))
