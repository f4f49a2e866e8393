"""The study's own reports: one table per scenario, the sparsity curve, and a self-contained HTML page.

Marks: ▲/▼ against the scenario's reference (the first content model on the first encoder,
frozen), △/▽ against LightGCN when the study has one; both from paired t-tests over users,
Holm-corrected over all pairs of the scenario (see :mod:`prismrec.evaluation.report`).
"""
from __future__ import annotations

import html
import re

import numpy as np

from prismrec.evaluation.documents import _png
from prismrec.provenance import provenance_line

LIGHTGCN = "lightgcn"


def _vs(scenario: dict, model: str, other: str, metric: str) -> int:
    """+1/-1 when ``model`` is significantly better/worse than ``other`` on ``metric``, else 0."""
    for pair in scenario.get("pairwise") or []:
        for first, second, sign in ((pair["reference"], pair["model"], 1), (pair["model"], pair["reference"], -1)):
            if first == other and second == model:
                test = pair["tests"].get(metric, {})
                return sign * test.get("direction", 0)
    return 0


def _cell(scenario: dict, model: str, metric: str) -> str:
    entry = scenario["models"][model]
    value, std = entry["metrics"].get(metric), entry.get("metrics_std", {}).get(metric, 0.0)
    if value is None:
        return "-"
    text = f"{value:.4f} ± {std:.4f}"
    text += {1: "▲", -1: "▼"}.get(_vs(scenario, model, scenario["reference_model"], metric), "")
    if LIGHTGCN in scenario["models"] and model != LIGHTGCN:
        text += {1: "△", -1: "▽"}.get(_vs(scenario, model, LIGHTGCN, metric), "")
    return text


def sparsity_curve(summary: dict) -> tuple[list[float], dict[str, list[tuple[float, float]]], str] | None:
    """``(fractions, {model: [(mean, std) per fraction]}, metric)`` from scenarios named ``<split>@<fraction>``."""
    points = {}
    for name in summary["scenarios"]:
        match = re.fullmatch(r"(.+)@([0-9.]+)", name)
        if match:
            points[float(match.group(2))] = name
            base = match.group(1)
    if not points:
        return None
    if base in summary["scenarios"]:  # the full split ends the curve, unless the run left it out (--scenarios)
        points[1.0] = base
    fractions = sorted(points)
    top = summary["scenarios"][points[fractions[-1]]]
    metric = top["headline"][-1]
    models = [m for m in top["models"] if all(m in summary["scenarios"][points[f]]["models"] for f in fractions)]
    curve = {m: [(summary["scenarios"][points[f]]["models"][m]["metrics"].get(metric, np.nan),
                  summary["scenarios"][points[f]]["models"][m].get("metrics_std", {}).get(metric, 0.0))
                 for f in fractions] for m in models}
    return fractions, curve, metric


def study_markdown(summary: dict) -> str:
    lines = [f"# {summary['name']}", "", f"Paradigms: {', '.join(summary['paradigms'])}. Marks: ▲/▼ significantly "
             "better/worse than the scenario's reference; △/▽ than LightGCN (paired t-test over users, "
             "Holm-corrected over all pairs, p < 0.05). Mean ± std over seeds.", ""]
    for name, scenario in summary["scenarios"].items():
        metrics = scenario["headline"]
        lines += [f"## {name}", "", f"Split: {scenario['split']}", "", f"Protocol: {scenario['protocol']}; "
                  f"reference: `{scenario['reference_model']}`; seeds: {scenario['seeds']}", ""]
        if scenario.get("tuning"):
            tuning = scenario["tuning"]
            lines += [f"Tuned: every model, {tuning['trials']} Optuna TPE trials each, selected on "
                      f"{tuning['selection']}; chosen parameters in `{tuning['folder']}/<model>/best_params.json`.", ""]
        lines += ["| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
        lines += [f"| {model} | " + " | ".join(_cell(scenario, model, m) for m in metrics) + " |"
                  for model in scenario["models"]]
        lines.append("")
    if summary.get("skipped"):
        lines += ["Not run (the encoder does not declare that paradigm): " + "; ".join(summary["skipped"]) + ".", ""]
    curve = sparsity_curve(summary)
    if curve:
        fractions, values, metric = curve
        lines += [f"## Sparsity curve ({metric})", "", "| model | " + " | ".join(f"{f:.0%} of train" for f in fractions)
                  + " |", "|---|" + "---:|" * len(fractions)]
        lines += [f"| {m} | " + " | ".join(f"{mean:.4f} ± {std:.4f}" for mean, std in points) + " |"
                  for m, points in values.items()]
    lines += ["", "## Provenance", "", provenance_line(summary["provenance"])]
    return "\n".join(lines) + "\n"


def _curve_png(curve) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fractions, values, metric = curve
    fig, ax = plt.subplots(figsize=(7, 4))
    for model, points in values.items():
        means, stds = zip(*points)
        ax.errorbar(fractions, means, yerr=stds, marker="o", capsize=3, label=model)
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    ax.set_xlabel("share of each user's training interactions")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    data = _png(fig)
    plt.close(fig)
    return data


def study_html(summary: dict) -> str:
    body = [f"<h1>{html.escape(summary['name'])}</h1><p>{html.escape(study_markdown(summary).splitlines()[2])}</p>"]
    for name, scenario in summary["scenarios"].items():
        metrics = scenario["headline"]
        rows = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{html.escape(_cell(scenario, m, k))}</td>"
                                                                   for k in metrics) + "</tr>"
                       for m in scenario["models"])
        tuned = (f"<p>Tuned: every model, {scenario['tuning']['trials']} TPE trials each, selected on "
                 f"{html.escape(scenario['tuning']['selection'])}.</p>" if scenario.get("tuning") else "")
        body.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(scenario['protocol'])}</p>{tuned}<table><tr><th>model</th>"
                    + "".join(f"<th>{html.escape(k)}</th>" for k in metrics) + f"</tr>{rows}</table>")
    curve = sparsity_curve(summary)
    if curve:
        body.append(f"<h2>Sparsity curve</h2><img alt='sparsity curve' src='data:image/png;base64,{_curve_png(curve)}'>")
    body.append(f"<h2>Provenance</h2><p>{html.escape(provenance_line(summary['provenance']))}</p>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child{text-align:left}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(summary['name'])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
