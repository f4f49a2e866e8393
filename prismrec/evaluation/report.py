"""Comparison reports: JSON for machines, a Markdown table (and a terminal table) for people."""
from __future__ import annotations

from dataclasses import dataclass, field

from prismrec.evaluation.evaluator import EvaluationResult
from prismrec.evaluation.significance import PairedTest, compare_results


@dataclass
class ModelRun:
    """One model's outcome in a comparison."""

    name: str
    result: EvaluationResult
    fit_seconds: float = 0.0
    info: dict = field(default_factory=dict)


def build_report(runs: list[ModelRun], *, headline: list[str] | None = None, context: dict | None = None) -> dict:
    """Metrics of every run plus paired t-tests of each run against the first one.

    ``headline`` picks the metrics of the table (default: every metric of the first run).
    """
    if not runs:
        raise ValueError("build_report needs at least one model run")
    reference = runs[0]
    report = {"protocol": reference.result.protocol, "reference_model": reference.name, **(context or {})}
    report["models"] = {}
    for run in runs:
        entry = {"metrics": run.result.summary, "fit_seconds": round(run.fit_seconds, 3), **run.info}
        if run is not reference:
            tests = compare_results(reference.result, run.result)
            entry[f"paired_t_test_vs_{reference.name}"] = {m: _test_json(t) for m, t in tests.items()}
        report["models"][run.name] = entry
    report["headline"] = headline or list(reference.result.per_user)
    return report


def _test_json(test: PairedTest) -> dict:
    return {"p_value": test.p_value, "t_statistic": test.statistic, "n_users": test.n_users,
            "significant_at_0.05": test.significant}


def _cell(report: dict, model: str, metric: str) -> str:
    entry = report["models"][model]
    value = entry["metrics"].get(metric)
    if value is None:
        return "-"
    test = entry.get(f"paired_t_test_vs_{report['reference_model']}", {}).get(metric, {})
    marker = ""
    if test.get("significant_at_0.05"):
        marker = "▲" if test["t_statistic"] < 0 else "▼"  # t < 0: this model's mean is higher
    return f"{value:.4f}{marker}"


def markdown_table(report: dict) -> str:
    """The report as a Markdown table; ▲/▼ mark significant (p < 0.05) gains/losses against the reference."""
    metrics = report["headline"]
    lines = [
        f"Protocol: {report['protocol']}. ▲/▼: significantly better/worse than `{report['reference_model']}` "
        "(paired t-test over users, p < 0.05).",
        "",
        "| model | " + " | ".join(metrics) + " | fit s |",
        "|---|" + "---:|" * (len(metrics) + 1),
    ]
    for model, entry in report["models"].items():
        cells = [_cell(report, model, m) for m in metrics]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {entry['fit_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def rich_table(report: dict):
    """The report as a rich Table for the terminal."""
    from rich.table import Table

    table = Table(title=f"{report['protocol']} (▲/▼ significantly better/worse than {report['reference_model']}, "
                        "paired t-test p<0.05)")
    table.add_column("model")
    for metric in report["headline"]:
        table.add_column(metric, justify="right")
    table.add_column("fit s", justify="right")
    for model, entry in report["models"].items():
        table.add_row(model, *[_cell(report, model, m) for m in report["headline"]], f"{entry['fit_seconds']:.1f}")
    return table
