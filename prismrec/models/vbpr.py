"""VBPR (He & McAuley 2016): BPR-MF plus a visual (or any content) preference term.

``score(u, i) = β_i + γ_u·γ_i + θ_u·(Eᵀ f_i) + β'·f_i`` where ``f_i`` is the item's feature
vector: the named arrays of ``item_features``, each normalised, then concatenated.
Training uses whole batches of triplets; the feature rows of a batch's items are gathered
once and pushed through ``[E | β']`` with a single matrix product.
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.models.base import ColdStartError, Recommender
from prismrec.models.content import items_seen, raise_on_non_finite, warn_unscorable_cold_items
from prismrec.models.module_training import threads_for
from prismrec.models.training import Adam, TripletSampler, fitted_batch_size, minibatch_epoch, train_epochs

NORMALIZATIONS = ("l2", "standard", "none")


def fuse_features(item_features, names, normalization: str = "l2") -> torch.Tensor:
    """Normalise each named array (``l2`` rows, ``standard`` columns, or ``none``), then concatenate.

    Example:
        >>> import numpy as np
        >>> fuse_features({"image": np.array([[3.0, 4.0]]), "text": np.ones((1, 1))}, ("image", "text")).tolist()
        [[0.6000000238418579, 0.800000011920929, 1.0]]
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"feature_normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    parts = []
    for name in names:
        raise_on_non_finite(item_features[name], f"item feature {name!r}")
        array = torch.as_tensor(np.asarray(item_features[name], dtype=np.float32))
        if normalization == "l2":
            array = array / array.norm(dim=1, keepdim=True).clamp(min=1e-12)
        elif normalization == "standard":
            array = (array - array.mean(0)) / array.std(0, correction=0).clamp(min=1e-12)
        parts.append(array)
    return torch.cat(parts, dim=1).contiguous()


class VBPR(Recommender):
    """Visual BPR on named item feature arrays (``fit(..., item_features={"image": array})``).

    Published scoring state: ``user_factors_``, ``user_visual_factors_`` (θ_u),
    ``item_factors_``, ``item_visual_embeddings_`` (``Eᵀ f_i``) and ``item_bias_``
    (``β_i + β'·f_i``), so a saved model scores without the raw features. It also keeps
    ``feature_projection_`` (E) and ``feature_bias_weights_`` (β'), plus the training
    features' column centre and scale under ``standard`` normalisation, so
    :meth:`add_items` can score items that arrive after training from their features alone.

    ``init_std`` 0.04 (about Xavier's scale for these tables; was 0.1) was chosen on ML-100k
    validation: Recall@20 0.330 against 0.322 (bench/results/2026-12-02-fidelity-mmrec.md).

    ``item_bias=False`` drops the paper's item bias ``β_i`` and visual bias ``β'·f_i``, as
    MMRec's VBPR does (see docs/models.md); the default keeps the paper's model.

    Example:
        >>> model = VBPR(feature_names=("image",), factors=32, visual_factors=32)  # doctest: +SKIP
        >>> model.fit(train, valid, item_features={"image": image_vectors})  # doctest: +SKIP
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image",), factors: int = 32, visual_factors: int = 32,
                 feature_normalization: str = "l2", learning_rate: float = 0.005, regularization: float = 1e-4,
                 bias_regularization: float = 1e-4, projection_regularization: float = 0.0, batch_size: int = 4096,
                 epochs: int = 50, init_std: float = 0.04, item_bias: bool = True,
                 early_stopping_metric: str = "ndcg@20", patience: int = 5, eval_every: int = 1,
                 seed: int = 0) -> None:
        if isinstance(feature_names, str):
            feature_names = (feature_names,)
        if not feature_names:
            raise ValueError("VBPR needs at least one item feature name, e.g. feature_names=('image',)")
        if feature_normalization not in NORMALIZATIONS:
            raise ValueError(f"feature_normalization must be one of {NORMALIZATIONS}, got {feature_normalization!r}")
        self.feature_names, self.factors, self.visual_factors = list(feature_names), factors, visual_factors
        self.feature_normalization, self.learning_rate = feature_normalization, learning_rate
        self.regularization = regularization
        self.bias_regularization, self.projection_regularization = bias_regularization, projection_regularization
        self.batch_size, self.epochs, self.init_std, self.item_bias = batch_size, epochs, init_std, item_bias
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed = seed

    def required_features_for_fit(self) -> tuple[str, ...]:
        return tuple(self.feature_names)

    def set_item_feature_modules(self, modules: dict) -> "VBPR":
        """End-to-end training: ``modules[name](item_rows) -> [b, d]`` computes feature ``name`` during
        ``fit``, with gradients, and its trainable parameters join the optimiser (see
        :mod:`prismrec.adapt.end2end`); the published scoring state comes from the final modules.
        """
        unknown = sorted(set(modules) - set(self.feature_names))
        if unknown:
            raise ValueError(f"VBPR: item feature module(s) {unknown} are not among feature_names {self.feature_names}")
        self._item_feature_modules = dict(modules)
        return self

    def _fit(self, train, valid, item_features, progress) -> None:
        features = fuse_features(item_features, self.feature_names, self.feature_normalization)
        seen = items_seen(train)
        warn_unscorable_cold_items("VBPR", seen, {name: np.asarray(item_features[name]) for name in self.feature_names})
        seen = torch.from_numpy(seen)
        self._remember_scaling(item_features)
        modules = getattr(self, "_item_feature_modules", None)
        if modules:  # end to end: trainable encoders recompute the batch's item features each step
            from prismrec.adapt.end2end import TrainableItemFeatures

            features = TrainableItemFeatures(item_features, self.feature_names, self.feature_normalization, modules)
        generator = torch.Generator().manual_seed(self.seed)

        def init(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=generator) * self.init_std)

        params = {
            "user": init(train.n_users, self.factors), "item": init(train.n_items, self.factors),
            "user_visual": init(train.n_users, self.visual_factors),
            "projection": init(features.shape[1], self.visual_factors),
            "bias": torch.nn.Parameter(torch.zeros(train.n_items)),
            "visual_bias": torch.nn.Parameter(torch.zeros(features.shape[1], 1)),
        }
        encoder_parameters = features.parameters() if modules else []
        optimizer = Adam([*params.values(), *encoder_parameters], learning_rate=self.learning_rate)
        sampler = TripletSampler(train, seed=self.seed)
        batch_size = fitted_batch_size(self, self.batch_size, len(train))

        def run_epoch(epoch: int) -> float:
            users, positives, negatives = (torch.from_numpy(a) for a in sampler.sample(len(train)))
            loss = minibatch_epoch(optimizer, lambda *batch: self._batch_loss(params, features, *batch),
                                   users, positives, negatives, batch_size)
            self._publish(params, features, seen)
            return loss

        with threads_for(train.n_users + train.n_items):  # small graphs: one thread (see threads_for)
            train_epochs(self, train, valid, run_epoch, epochs=self.epochs, metric=self.early_stopping_metric,
                         patience=self.patience, every=self.eval_every, progress=progress)
        if modules:  # the encoders go back to the best epoch too, like the scoring state
            torch.nn.utils.vector_to_parameters(self.encoder_trainable_, encoder_parameters)

    def _batch_loss(self, params, features, users, positives, negatives) -> torch.Tensor:
        """Mean ``-ln σ(x_uij)`` plus L2 terms (summed over the batch's rows, divided by the batch)."""
        user, user_visual = params["user"].index_select(0, users), params["user_visual"].index_select(0, users)
        positive_items, negative_items = (params["item"].index_select(0, rows) for rows in (positives, negatives))
        positive_bias, negative_bias = (params["bias"].index_select(0, rows) for rows in (positives, negatives))
        if isinstance(features, torch.Tensor):
            feature_difference = features.index_select(0, positives) - features.index_select(0, negatives)
        else:  # trainable item features (end to end)
            feature_difference = features.pair_difference(positives, negatives)
        # one product gives both Eᵀ(f_i - f_j) and β'·(f_i - f_j)
        projected = feature_difference @ torch.cat([params["projection"], params["visual_bias"]], dim=1)
        x = (user * (positive_items - negative_items)).sum(1) + (user_visual * projected[:, :-1]).sum(1)
        weights = sum(rows.pow(2).sum() for rows in (user, user_visual, positive_items, negative_items))
        penalty = self.regularization * weights + self.projection_regularization * len(users) * params[
            "projection"].pow(2).sum()
        if self.item_bias:  # the paper's β_i and β'·f_i (without them both stay zero: MMRec's VBPR)
            x = x + projected[:, -1] + positive_bias - negative_bias
            penalty = penalty + self.bias_regularization * (positive_bias.pow(2).sum() + negative_bias.pow(2).sum())
        return -torch.nn.functional.logsigmoid(x).mean() + 0.5 * penalty / len(users)

    @torch.no_grad()
    def _publish(self, params, features: torch.Tensor, seen: torch.Tensor) -> None:
        """Scoring tensors; items never seen in training keep only their content terms (their
        latent factors and bias were only ever pushed down as negatives)."""
        if not isinstance(features, torch.Tensor):  # end to end: the encoders' trainable part, flat, so that
            # early stopping snapshots and restores it with the scoring state of the best epoch
            self.encoder_trainable_ = torch.nn.utils.parameters_to_vector(features.parameters()).detach().clone()
            features = features.full()
        self.user_factors_ = params["user"].detach().clone()
        self.user_visual_factors_ = params["user_visual"].detach().clone()
        self.item_factors_ = params["item"].detach() * seen.unsqueeze(1)
        self.item_visual_embeddings_ = features @ params["projection"].detach()
        self.item_bias_ = params["bias"].detach() * seen + (features @ params["visual_bias"].detach()).squeeze(1)
        self.feature_projection_ = params["projection"].detach().clone()
        self.feature_bias_weights_ = params["visual_bias"].detach().squeeze(1).clone()

    def _remember_scaling(self, item_features) -> None:
        """Column centre and scale of the raw training features (``standard`` normalisation only)."""
        self.feature_center_ = self.feature_scale_ = None
        if self.feature_normalization == "standard":
            raw = fuse_features(item_features, self.feature_names, "none")
            self.feature_center_, self.feature_scale_ = raw.mean(0), raw.std(0, correction=0).clamp(min=1e-12)

    @torch.no_grad()
    def add_items(self, item_features) -> np.ndarray:
        """Append cold items: ``γ_i = 0`` (no interactions yet), ``Eᵀf_i`` and ``β'·f_i`` from features.

        Example:
            >>> model.add_items({"image": np.ones((2, 512), np.float32)})  # doctest: +SKIP
            array([1682, 1683])
        """
        self._check_fitted()
        if getattr(self, "feature_projection_", None) is None:
            raise ColdStartError("this VBPR was saved without feature_projection_ (an older PrismRec); "
                                 "refit it to score new items from their features")
        missing = [name for name in self.feature_names if name not in item_features]
        if missing:
            raise ValueError(f"VBPR.add_items needs the feature arrays {missing}; got {sorted(item_features)}")
        if self.feature_normalization == "standard":
            features = (fuse_features(item_features, self.feature_names, "none") - self.feature_center_) \
                / self.feature_scale_
        else:
            features = fuse_features(item_features, self.feature_names, self.feature_normalization)
        if features.shape[1] != self.feature_projection_.shape[0]:
            raise ValueError(f"VBPR.add_items: the features have {features.shape[1]} columns in all, but the "
                             f"model was fitted on {self.feature_projection_.shape[0]}")
        start, count = self.n_items_, features.shape[0]
        self.item_factors_ = torch.cat([self.item_factors_, torch.zeros(count, self.item_factors_.shape[1])])
        self.item_visual_embeddings_ = torch.cat([self.item_visual_embeddings_, features @ self.feature_projection_])
        self.item_bias_ = torch.cat([self.item_bias_, features @ self.feature_bias_weights_])
        self.n_items_ = start + count
        return np.arange(start, start + count)

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64))
        user_rows = self.user_factors_.index_select(0, users)
        scores = torch.addmm(self.item_bias_.unsqueeze(0), user_rows, self.item_factors_.T)
        return scores.addmm_(self.user_visual_factors_.index_select(0, users), self.item_visual_embeddings_.T)
