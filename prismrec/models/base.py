"""The Recommender contract shared by every model.

``__init__`` stores hyperparameters (explicit keyword arguments), ``fit`` learns state
(attributes ending in ``_``), ``score`` returns a dense ``[n_users, n_items]`` tensor.
The base class gives batched ``recommend``, ``save``/``load`` (safetensors + JSON),
seeding, and early stopping on a validation metric computed by the shared evaluator.
"""
from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from prismrec.data.interactions import Interactions
from prismrec.io import atomic_path, atomic_write_json
from prismrec.threads import thread_budget

FORMAT_VERSION = 1


class NotFittedError(RuntimeError):
    pass


class ColdStartError(ValueError):
    """The model cannot score an item it never saw in training (it has no content path)."""


class Recommender:
    """Base class. Subclasses implement ``_fit`` and ``score``.

    Example:
        >>> from prismrec.models import MostPopular
        >>> model = MostPopular().fit(train)  # doctest: +SKIP
        >>> items, scores = model.recommend([0, 1], k=10)  # doctest: +SKIP
    """

    #: names of item feature arrays the model needs (e.g. ``("image",)``); empty for pure CF
    required_features: tuple[str, ...] = ()

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind in kinds]

    def get_params(self) -> dict:
        """Hyperparameters as given to ``__init__`` (JSON-serialisable)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        *,
        item_features: Mapping[str, np.ndarray] | None = None,
        progress: bool = False,
        valid_candidates: np.ndarray | None = None,
    ) -> "Recommender":
        """Learn from ``train``; early-stop on ``valid`` when the model trains iteratively.

        ``item_features`` maps names to float arrays ``[n_items, d]`` aligned with
        ``train.items``; models declare what they need in ``required_features``.
        ``valid_candidates``: rank only these items when early stopping (on a cold-start item
        split, the valid-cold items, so that validation follows the test protocol).
        """
        self._valid_candidates = None if valid_candidates is None else np.asarray(valid_candidates, dtype=np.int64)
        item_features = dict(item_features or {})
        self._check_features(train, item_features)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        seed = getattr(self, "seed", None)
        if seed is not None:
            torch.manual_seed(seed)
            np.random.seed(seed % (2**32))
        with thread_budget():  # the configured count, else the free CPUs (see prismrec.threads)
            self._fit(train, valid, item_features, progress)
        return self

    def _check_features(self, train: Interactions, item_features: Mapping[str, np.ndarray]) -> None:
        for name in self.required_features_for_fit():
            if name not in item_features:
                raise ValueError(
                    f"{type(self).__name__} needs the item feature array {name!r}, but fit() got "
                    f"{sorted(item_features) or 'no item features'}; pass item_features={{{name!r}: array}}"
                )
            array = item_features[name]
            if array.ndim != 2 or array.shape[0] != train.n_items:
                raise ValueError(
                    f"{type(self).__name__}: item feature {name!r} must be [n_items={train.n_items}, d], "
                    f"got shape {tuple(array.shape)}"
                )

    def required_features_for_fit(self) -> tuple[str, ...]:
        """Feature names this instance needs (may depend on hyperparameters)."""
        return self.required_features

    def _fit(self, train, valid, item_features, progress) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def score(self, user_ids) -> torch.Tensor:
        """Scores ``[len(user_ids), n_items]`` (float32 tensor); higher is better."""
        raise NotImplementedError

    def add_items(self, item_features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Append items unseen in training, scored from their content; returns their new indices.

        The extension point for cold-start items (used by ``prismrec serve``'s ``POST /items``):
        ``item_features`` holds the same named arrays ``fit`` took, one row per new item.
        Content models (e.g. VBPR) override it; ID-only models cannot, and raise
        :class:`ColdStartError`.

        Example:
            >>> model.add_items({"image": new_vectors})  # doctest: +SKIP
            array([1682, 1683])
        """
        raise ColdStartError(
            f"{type(self).__name__} scores items only through embeddings learned from their interactions, "
            "so it cannot score a new item from its content; refit it with the item, or serve a content "
            "model such as vbpr")

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() or load() first")

    @torch.no_grad()
    def recommend(
        self,
        user_ids,
        k: int = 10,
        *,
        exclude: Interactions | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user, ``[len(user_ids), k]`` each.

        Items a user has in ``exclude`` (typically the training data) are never returned.
        """
        self._check_fitted()
        user_ids = np.asarray(user_ids, dtype=np.int64)
        k = min(k, self.n_items_)
        seen = exclude.matrix if exclude is not None else None
        items_out = np.empty((len(user_ids), k), dtype=np.int64)
        scores_out = np.empty((len(user_ids), k), dtype=np.float32)
        for start in range(0, len(user_ids), batch_size):
            batch = user_ids[start : start + batch_size]
            scores = self.score(batch).float()
            if seen is not None:
                mask_seen(scores, seen, batch)
            top = torch.topk(scores, k, dim=1)
            items_out[start : start + len(batch)] = top.indices.numpy()
            scores_out[start : start + len(batch)] = top.values.numpy()
        return items_out, scores_out

    # ------------------------------------------------------------------ persistence
    def _learned_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, scalars = {}, {}
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            elif isinstance(value, np.ndarray):
                tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
                scalars.setdefault("__numpy__", []).append(name)
            elif isinstance(value, (int, float, str, bool, list, dict)) or value is None:
                scalars[name] = value
        return tensors, scalars

    def save(self, path: str | Path) -> Path:
        """Save to folder ``path``: ``config.json`` (class, params, scalars) + ``weights.safetensors``."""
        from safetensors.torch import save_file

        from prismrec.models.registry import name_of

        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors, scalars = self._learned_state()
        with atomic_path(path / "weights.safetensors") as tmp:
            save_file(tensors, str(tmp))
        config = {
            "format_version": FORMAT_VERSION,
            "model": name_of(type(self)),
            "params": self.get_params(),
            "learned": scalars,
        }
        atomic_write_json(path / "config.json", config)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        """Load a model saved with :meth:`save`; ``Recommender.load`` picks the class from the config."""
        from safetensors.torch import load_file

        from prismrec.models.registry import get_model_class

        path = Path(path)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file}: no saved model here (expected config.json + weights.safetensors)")
        config = json.loads(config_file.read_text())
        model_cls = get_model_class(config["model"])
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {model_cls.__name__}, not a {cls.__name__}")
        model = model_cls(**config["params"])
        learned = dict(config["learned"])
        numpy_names = set(learned.pop("__numpy__", []))
        for name, value in learned.items():
            setattr(model, name, value)
        for name, tensor in load_file(str(path / "weights.safetensors")).items():
            setattr(model, name, tensor.numpy() if name in numpy_names else tensor)
        return model

    def clone(self) -> "Recommender":
        """An unfitted copy with the same hyperparameters."""
        return type(self)(**copy.deepcopy(self.get_params()))


def mask_seen(scores: torch.Tensor, seen, user_batch: np.ndarray, value: float = -np.inf) -> None:
    """Set ``scores[row, item] = value`` for every item user ``user_batch[row]`` has in CSR ``seen``."""
    sub = seen[user_batch]
    if sub.nnz == 0:
        return
    rows = np.repeat(np.arange(len(user_batch)), np.diff(sub.indptr))
    scores[torch.from_numpy(rows), torch.from_numpy(sub.indices.astype(np.int64))] = value
