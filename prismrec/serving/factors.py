"""Models as inner products, for the index and for folding feedback into user vectors.

Serving needs ``score(u, i) = user_vector[u] · item_vector[i]`` so that top-k is an
index search and new users and items are new rows. :func:`factor_view` states that
factorisation for each built-in model (an explicit table, no discovery); a model of your
own joins by defining ``serving_factors() -> FactorView``. Item biases become a trailing
item column matched by a constant-1 user column.

Fold-in (what ``POST /interactions`` does for MF-style models) is the least-squares
user step of weighted implicit MF (the user update of implicit ALS, Hu, Koren & Volinsky
2008, eq. 4, with the uniform low weight on missing entries of He et al. 2016's eALS),
with the item side frozen:

    x_u = argmin_x  Σ_i c_ui (p_ui − b_i − x·y_i)² + λ ||x − x_u⁰||²

over *all* items: ``p_ui = 1`` for the user's items (training plus feedback) and 0
otherwise; weight ``c_ui = 1`` on the user's items and ``w₀`` (default 0.01) elsewhere;
``x_u⁰`` is the user's fitted vector (zero for a user unseen in training), so evidence
moves a known user away from the fit gradually. A small ``w₀`` matters for factors that
were not trained by least squares (BPR): with ``w₀ = 1`` the solve pushes the user's
other unseen items of the same taste towards 0 as hard as it lifts the clicked ones.
With the Gram matrix ``YᵀY`` kept up to date, one solve costs ``O(|P_u| d² + d³)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FactorView:
    """``scores = user_vectors @ item_vectors.T``; the last ``fixed_user_columns`` user columns are constants."""

    user_vectors: torch.Tensor
    item_vectors: torch.Tensor
    fixed_user_columns: int = 0

    @property
    def free_dims(self) -> int:
        """Number of leading user columns that fold-in may set (0: scores do not depend on the user)."""
        return self.user_vectors.shape[1] - self.fixed_user_columns


def _ones(n: int) -> torch.Tensor:
    return torch.ones(n, 1)


def _with_bias(user_parts, item_parts, item_bias) -> FactorView:
    users = torch.cat([*user_parts, _ones(user_parts[0].shape[0])], dim=1)
    items = torch.cat([*item_parts, item_bias.reshape(-1, 1)], dim=1)
    return FactorView(users.float().contiguous(), items.float().contiguous(), fixed_user_columns=1)


def _bpr(model) -> FactorView:
    return _with_bias([model.user_factors_], [model.item_factors_], model.item_bias_)


def _vbpr(model) -> FactorView:
    return _with_bias([model.user_factors_, model.user_visual_factors_],
                      [model.item_factors_, model.item_visual_embeddings_], model.item_bias_)


def _lightgcn(model) -> FactorView:
    return FactorView(model.user_embeddings_.float().contiguous(), model.item_embeddings_.float().contiguous())


def _most_popular(model) -> FactorView:
    return FactorView(_ones(model.n_users_), model.item_popularity_.float().reshape(-1, 1), fixed_user_columns=1)


def _views() -> dict:
    from prismrec.models import BPR, VBPR, LightGCN, MostPopular

    return {BPR: _bpr, VBPR: _vbpr, LightGCN: _lightgcn, MostPopular: _most_popular}


def factor_view(model) -> FactorView:
    """The inner-product form of a fitted model; a clear error for a model that has none.

    Example:
        >>> view = factor_view(bpr)  # doctest: +SKIP
        >>> torch.allclose(view.user_vectors[:2] @ view.item_vectors.T, bpr.score([0, 1]))  # doctest: +SKIP
        True
    """
    if hasattr(model, "serving_factors"):
        return model.serving_factors()
    build = _views().get(type(model))
    if build is not None:
        return build(model)
    view = _published_embeddings(model)
    if view is None:
        raise TypeError(f"{type(model).__name__} has no inner-product form for serving; give it a "
                        "serving_factors() method returning prismrec.serving.factors.FactorView")
    return view


def _published_embeddings(model) -> FactorView | None:
    """``user_embeddings_ @ item_embeddings_.T`` (the graph models' published state), if it is the score.

    Checked against ``model.score`` on a few users, so a model whose score adds other terms
    is refused rather than served wrongly.
    """
    users, items = getattr(model, "user_embeddings_", None), getattr(model, "item_embeddings_", None)
    if not (isinstance(users, torch.Tensor) and isinstance(items, torch.Tensor)
            and users.ndim == items.ndim == 2 and users.shape[1] == items.shape[1]):
        return None
    view = FactorView(users.float().contiguous(), items.float().contiguous())
    sample = list(range(min(8, users.shape[0])))
    expected = model.score(sample).float()
    if not torch.allclose(view.user_vectors[sample] @ view.item_vectors.T, expected, rtol=1e-4, atol=1e-4):
        return None
    return view


class FoldIn:
    """Least-squares fold-in of a user's items into a new user vector (see the module docstring).

    Example:
        >>> fold = FoldIn(view.item_vectors, free_dims=view.free_dims)  # doctest: +SKIP
        >>> vector = fold.user_vector(item_rows=[3, 7], prior=view.user_vectors[0])  # doctest: +SKIP
    """

    def __init__(self, item_vectors: torch.Tensor, *, free_dims: int, missing_weight: float = 0.01,
                 regularization: float = 1.0) -> None:
        if free_dims <= 0:
            raise ValueError("this model's scores do not depend on the user; there is nothing to fold in")
        if not 0 < missing_weight <= 1 or regularization <= 0:
            raise ValueError(f"fold-in needs 0 < missing_weight <= 1 and regularization > 0, got "
                             f"{missing_weight} and {regularization}")
        self.free_dims, self.missing_weight, self.regularization = free_dims, missing_weight, regularization
        self.gram = torch.zeros(free_dims, free_dims, dtype=torch.float64)
        self.bias_projection = torch.zeros(free_dims, dtype=torch.float64)  # Σ_i b_i y_i
        self.add_items(item_vectors)

    def add_items(self, item_vectors: torch.Tensor) -> None:
        """Account for new item rows (the Gram matrix is a sum over items)."""
        factors, bias = self._split(item_vectors)
        self.gram += factors.T @ factors
        self.bias_projection += factors.T @ bias

    def _split(self, item_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        item_vectors = item_vectors.double()
        factors = item_vectors[:, : self.free_dims]
        fixed = item_vectors[:, self.free_dims:]
        return factors, fixed.sum(1) if fixed.shape[1] else torch.zeros(len(item_vectors), dtype=torch.float64)

    def user_vector(self, positive_item_vectors: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Solve the ridge system for one user from the vectors of the items they interacted with."""
        factors, bias = self._split(positive_item_vectors)
        identity = torch.eye(self.free_dims, dtype=torch.float64)
        w0 = self.missing_weight
        system = w0 * self.gram + (1 - w0) * factors.T @ factors + self.regularization * identity
        # Σ_i c_i (p_i − b_i) y_i  =  Σ_P (1 − b_i) y_i − w₀ Σ_{i∉P} b_i y_i
        right = factors.sum(0) - factors.T @ bias - w0 * (self.bias_projection - factors.T @ bias)
        if prior is not None:
            right = right + self.regularization * prior[: self.free_dims].double()
        return torch.linalg.solve(system, right).float()
