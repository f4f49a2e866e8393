"""Paired significance tests between runs, Holm correction, and multi-seed summaries.

Sign convention: a test compares a *candidate* run ``b`` with a *reference* run ``a``; its
t-statistic is that of the per-user differences ``b - a``, so **a positive t means the
candidate is better** (for metrics where higher is better, which all ranking metrics are).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    """``statistic`` > 0: ``b`` (the candidate) has the higher mean. ``p_holm``: Holm-adjusted p-value."""

    metric: str
    mean_a: float
    mean_b: float
    statistic: float
    p_value: float
    n_users: int
    p_holm: float | None = None

    @property
    def significant(self) -> bool:
        return (self.p_value if self.p_holm is None else self.p_holm) < 0.05

    @property
    def direction(self) -> int:
        """+1 when significantly better than the reference, -1 when significantly worse, else 0."""
        return 0 if not self.significant else (1 if self.statistic > 0 else -1)


def paired_t_test(users_a, values_a, users_b, values_b, metric: str = "") -> PairedTest:
    """Two-sided paired t-test of ``b`` against ``a`` over the users both evaluated (scipy ``ttest_rel``).

    The statistic is that of ``b - a``: positive when ``b`` is better.

    Example:
        >>> test = paired_t_test([0, 1, 2], [0.1, 0.2, 0.3], [0, 1, 2], [0.2, 0.4, 0.5])
        >>> round(test.p_value, 4), test.statistic > 0
        (0.0377, True)
    """
    users_a, users_b = np.asarray(users_a), np.asarray(users_b)
    common, index_a, index_b = np.intersect1d(users_a, users_b, return_indices=True)
    if len(common) < 2:
        raise ValueError(f"paired test on {metric!r}: the runs share {len(common)} users; need at least 2")
    a = np.asarray(values_a, dtype=np.float64)[index_a]
    b = np.asarray(values_b, dtype=np.float64)[index_b]
    if np.allclose(a, b):
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.ttest_rel(b, a)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return PairedTest(metric, float(a.mean()), float(b.mean()), statistic, p_value, len(common))


def compare_results(reference, other, metrics=None) -> dict[str, PairedTest]:
    """Paired tests of ``other`` against ``reference`` (two EvaluationResult) for every shared metric."""
    names = metrics or [m for m in reference.per_user if m in other.per_user]
    return {
        m: paired_t_test(reference.users, reference.per_user[m], other.users, other.per_user[m], m) for m in names
    }


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Hand-written because SciPy offers only Benjamini-Hochberg (``false_discovery_control``)
    and statsmodels is a large dependency for five lines.

    Example:
        >>> holm_adjust([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def seed_summary(values_by_seed: dict[int, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation of each metric across seeds.

    Example:
        >>> seed_summary({0: {"ndcg@10": 0.2}, 1: {"ndcg@10": 0.4}})["ndcg@10"]
        (0.30000000000000004, 0.14142135623730953)
    """
    if not values_by_seed:
        raise ValueError("seed_summary needs at least one seed")
    names = set.intersection(*(set(v) for v in values_by_seed.values()))
    out = {}
    for name in sorted(names):
        column = np.array([run[name] for run in values_by_seed.values()], dtype=np.float64)
        out[name] = (float(column.mean()), float(column.std(ddof=1)) if len(column) > 1 else 0.0)
    return out
