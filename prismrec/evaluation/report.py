"""Comparison reports: JSON for machines, Markdown (and a terminal table) for people.

A comparison holds one :class:`ModelRun` per model, each with one evaluation per seed.
Metrics are reported as the mean over seeds (± the sample standard deviation when there
are several). Significance: a two-sided paired t-test over users against a reference model,
where each user's metric is first averaged over the seeds; the t-statistic is that of
``model - reference``, so **t > 0 means better than the reference**. p-values are
Holm-corrected, per metric, over every comparison the report makes (against the reference,
or all pairs when asked); ▲/▼ mark Holm-adjusted p < 0.05.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from prismrec.evaluation.evaluator import EvaluationResult
from prismrec.evaluation.significance import PairedTest, holm_adjust, paired_t_test

def significance_note(n_seeds: int) -> str:
    over = "paired t-test over users" + (" (each user's metric averaged over the seeds)" if n_seeds > 1 else "")
    return f"{over}, two-sided; t > 0: better than the reference; p-values Holm-corrected per metric over all comparisons"


@dataclass
class ModelRun:
    """One model's outcome in a comparison: an evaluation (and fit time, best epoch) per seed."""

    name: str
    results: dict = field(default_factory=dict)  # seed -> EvaluationResult
    fit_seconds: dict = field(default_factory=dict)  # seed -> seconds
    info: dict = field(default_factory=dict)  # model, params, features, best_epoch per seed...

    @classmethod
    def single(cls, name: str, result: EvaluationResult, fit_seconds: float = 0.0, info: dict | None = None):
        return cls(name, {0: result}, {0: fit_seconds}, dict(info or {}))

    def seed_averaged(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(users, values)``: each user's metric averaged over the seeds that evaluated them."""
        users = np.unique(np.concatenate([r.users for r in self.results.values()]))
        total, count = np.zeros(len(users)), np.zeros(len(users))
        for result in self.results.values():
            position = np.searchsorted(users, result.users)
            total[position] += result.per_user[metric]
            count[position] += 1
        return users, total / count


def _summary(run: ModelRun) -> tuple[dict, dict]:
    seeds = list(run.results)
    names = [m for m in run.results[seeds[0]].summary if all(m in run.results[s].summary for s in seeds)]
    values = {m: np.array([run.results[s].summary[m] for s in seeds], dtype=np.float64) for m in names}
    means = {m: float(v.mean()) for m, v in values.items()}
    stds = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()}
    return means, stds


def _tests(runs: list[ModelRun], pairs: list[tuple[int, int]], metrics: list[str]) -> dict:
    """Paired tests for ``(reference index, candidate index)`` pairs, Holm-adjusted per metric."""
    tests: dict[tuple[int, int], dict[str, PairedTest]] = {pair: {} for pair in pairs}
    for metric in metrics:
        raw = []
        for a, b in pairs:
            users_a, values_a = runs[a].seed_averaged(metric)
            users_b, values_b = runs[b].seed_averaged(metric)
            raw.append(paired_t_test(users_a, values_a, users_b, values_b, metric))
        for (pair, test), p_holm in zip(zip(pairs, raw), holm_adjust([t.p_value for t in raw]) if raw else []):
            tests[pair][metric] = PairedTest(**{**test.__dict__, "p_holm": float(p_holm)})
    return tests


def build_report(runs: list[ModelRun], *, headline: list[str] | None = None, reference: str | None = None,
                 all_pairs: bool = False, context: dict | None = None) -> dict:
    """Metrics of every run (mean ± std over seeds) and paired tests against the reference model.

    ``headline`` picks the metrics of the table (default: every per-user metric of the first run).
    """
    if not runs:
        raise ValueError("build_report needs at least one model run")
    names = [run.name for run in runs]
    reference = reference or names[0]
    if reference not in names:
        raise ValueError(f"reference model {reference!r} is not one of {names}")
    ref = names.index(reference)
    first = next(iter(runs[0].results.values()))
    metrics = [m for m in first.per_user if all(m in r.per_user for run in runs for r in run.results.values())]
    pairs = [(ref, i) for i in range(len(runs)) if i != ref]
    if all_pairs:
        pairs += [(a, b) for a, b in combinations(range(len(runs)), 2) if ref not in (a, b)]
    tests = _tests(runs, pairs, metrics)
    report = {"protocol": first.protocol, "reference_model": reference,
              "significance": significance_note(len(runs[0].results)),
              "seeds": list(runs[0].results), **(context or {}), "models": {}}
    for index, run in enumerate(runs):
        means, stds = _summary(run)
        entry = {"metrics": means, "metrics_std": stds,
                 "fit_seconds": round(float(np.mean(list(run.fit_seconds.values()) or [0.0])), 3), **run.info,
                 "per_seed": {str(seed): {"metrics": result.summary, "fit_seconds": round(run.fit_seconds.get(seed, 0.0), 3)}
                              for seed, result in run.results.items()}}
        if index != ref:
            entry[f"paired_t_test_vs_{reference}"] = {m: _test_json(t) for m, t in tests[(ref, index)].items()}
        report["models"][run.name] = entry
    if all_pairs:
        report["pairwise"] = [{"reference": names[a], "model": names[b],
                               "tests": {m: _test_json(t) for m, t in tests[(a, b)].items()}}
                              for a, b in pairs]
    report["headline"] = headline or metrics
    return report


def _test_json(test: PairedTest) -> dict:
    return {"p_value": test.p_value, "p_holm": test.p_holm, "t_statistic": test.statistic,
            "mean_reference": test.mean_a, "mean_model": test.mean_b, "n_users": test.n_users,
            "significant_at_0.05": test.significant, "direction": test.direction}


def _test(report: dict, model: str, metric: str) -> dict:
    return report["models"][model].get(f"paired_t_test_vs_{report['reference_model']}", {}).get(metric, {})


def cell(report: dict, model: str, metric: str, *, with_std: bool = True) -> str:
    """``0.3370 ± 0.0021▲``: mean over seeds, std when there are several, direction of a significant difference."""
    entry = report["models"][model]
    value = entry["metrics"].get(metric)
    if value is None:
        return "-"
    std = entry.get("metrics_std", {}).get(metric)
    text = f"{value:.4f}" + (f" ± {std:.4f}" if with_std and len(report.get("seeds", [])) > 1 and std is not None
                             else "")
    direction = _test(report, model, metric).get("direction", 0)
    return text + {1: "▲", -1: "▼"}.get(direction, "")


def p_cell(report: dict, model: str, metric: str) -> str:
    """``p=0.0012 (t=+3.41)`` (Holm-adjusted p), or ``reference`` for the reference model."""
    if model == report["reference_model"]:
        return "reference"
    test = _test(report, model, metric)
    if not test:
        return "-"
    return f"p={test['p_holm']:.2g} (t={test['t_statistic']:+.2f})"


def markdown_table(report: dict) -> str:
    """The metric table (mean ± std over seeds; ▲/▼ significant against the reference) and its p-values."""
    metrics = report["headline"]
    seeds = report.get("seeds", [])
    spread = f"mean ± std over {len(seeds)} seeds" if len(seeds) > 1 else "one run"
    lines = [
        f"{spread[0].upper()}{spread[1:]}. ▲/▼: significantly better/worse than "
        f"`{report['reference_model']}` ({report.get('significance', 'paired t-test over users')}; p < 0.05).",
        "",
        "| model | " + " | ".join(metrics) + " | fit s | best epoch |",
        "|---|" + "---:|" * (len(metrics) + 2),
    ]
    for model, entry in report["models"].items():
        cells = [cell(report, model, m) for m in metrics]
        epochs = entry.get("best_epoch")
        epoch_text = "-" if epochs is None else ", ".join(str(e) for e in (epochs if isinstance(epochs, list)
                                                                            else [epochs]))
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {entry['fit_seconds']:.1f} | {epoch_text} |")
    lines += ["", f"p-values against `{report['reference_model']}` (Holm-adjusted; raw p-values, t and n in "
              "results.json):", "", "| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for model in report["models"]:
        lines.append(f"| {model} | " + " | ".join(p_cell(report, model, m) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def rich_table(report: dict):
    """The report as a rich Table for the terminal."""
    from rich.table import Table

    table = Table(title=f"{report['protocol']} (▲/▼ significantly better/worse than {report['reference_model']}, "
                        "paired t-test, Holm p<0.05)")
    table.add_column("model")
    for metric in report["headline"]:
        table.add_column(metric, justify="right")
    table.add_column("fit s", justify="right")
    for model, entry in report["models"].items():
        table.add_row(model, *[cell(report, model, m) for m in report["headline"]], f"{entry['fit_seconds']:.1f}")
    return table
