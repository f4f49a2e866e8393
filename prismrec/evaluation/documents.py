"""The files a comparison leaves for people: ``results.md`` and a self-contained ``report.html``.

``report.html`` embeds its plots as PNG data (matplotlib, Agg backend), so it can be mailed
or attached to a paper review as one file: metric bars with error bars over seeds, the
per-user distribution of the first headline metric, and recall by item popularity
(cold / tail / head items).
"""
from __future__ import annotations

import base64
import html
import io
import json

import numpy as np

from prismrec.evaluation.report import cell, markdown_table, p_cell
from prismrec.provenance import provenance_line


def _params_text(entry: dict) -> str:
    params = entry.get("params", {})
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "none"


def _features_text(entry: dict) -> str:
    features = entry.get("features") or {}
    if not features:
        return "none (ids only)"
    return ", ".join(f"{name} ({info.get('encoder_id', info.get('encoder', '?'))})" for name, info in features.items())


def _seeds_text(report: dict) -> str:
    seeds = [s for s in report.get("seeds") or [] if s is not None]
    return ", ".join(map(str, seeds)) + " (split and models rerun per seed)" if seeds else "one run, seeds as configured"


def results_markdown(report: dict) -> str:
    """The whole ``results.md``: context, metric table, p-values, models, breakdown and provenance."""
    lines = [f"# {report.get('name', 'comparison')}", "", f"Data: {report.get('data', '?')}", "",
             f"Split: {report.get('split', '?')}", "",
             f"Protocol: {report['protocol']}; masked at test time: each user's "
             f"{' and '.join(report.get('masked_at_test', ['train', 'valid']))} items.", "",
             f"Seeds: {_seeds_text(report)}", "", markdown_table(report), "## Models", ""]
    for model, entry in report["models"].items():
        lines.append(f"- **{model}** (`{entry.get('model', model)}`): features: {_features_text(entry)}; "
                     f"hyperparameters: {_params_text(entry)}")
    breakdown = {m: e["breakdown"] for m, e in report["models"].items() if e.get("breakdown")}
    if breakdown:
        k = report.get("breakdown_k")
        lines += ["", f"## Recall@{k} by item popularity in train", "",
                  "Cold: no training interaction; head: the most popular items holding half of the training "
                  "interactions; tail: the rest. Mean over seeds; `-`: no test item in the group.", "",
                  "| model | cold | tail | head |", "|---|---:|---:|---:|"]
        for model, groups in breakdown.items():
            cells = ["-" if groups[g]["recall"] is None else f"{groups[g]['recall']:.4f}" for g in ("cold", "tail", "head")]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if report.get("provenance"):
        lines += ["", "## Provenance", "", provenance_line(report["provenance"]),
                  "", "The full resolved config is in results.json (`config`)."]
    return "\n".join(lines) + "\n"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(report: dict, per_user: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    models, metrics = list(report["models"]), report["headline"]
    out = []
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(models) * len(metrics) / 2), 3.6))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        entry = report["models"][model]
        means = [entry["metrics"].get(m, np.nan) for m in metrics]
        stds = [entry.get("metrics_std", {}).get(m, 0.0) for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, means, width, yerr=stds, capsize=3, label=model)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(models) - 1) / 2, metrics)
    ax.set_ylabel("mean over seeds (error bar: std)")
    ax.legend(fontsize=8)
    out.append(("Headline metrics", _png(fig)))
    plt.close(fig)
    if per_user:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(per_user)), 3.6))
        ax.boxplot(list(per_user.values()), showmeans=True)
        ax.set_xticks(np.arange(1, len(per_user) + 1), list(per_user), rotation=20)
        ax.set_ylabel(f"{metrics[0]} per user (seed-averaged)")
        out.append((f"Per-user distribution of {metrics[0]}", _png(fig)))
        plt.close(fig)
    groups = ("cold", "tail", "head")
    breakdown = {m: report["models"][m].get("breakdown") for m in models if report["models"][m].get("breakdown")}
    if breakdown:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for i, (model, values) in enumerate(breakdown.items()):
            recalls = [np.nan if values[g]["recall"] is None else values[g]["recall"] for g in groups]
            ax.bar(np.arange(3) + i * width, recalls, width, label=model)
        ax.set_xticks(np.arange(3) + width * (len(breakdown) - 1) / 2, groups)
        ax.set_ylabel(f"recall@{report.get('breakdown_k')}")
        ax.legend(fontsize=8)
        out.append(("Recall by item popularity in train (cold / tail / head)", _png(fig)))
        plt.close(fig)
    return out


def _table_html(report: dict, render) -> str:
    metrics = report["headline"]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = "".join(f"<tr><td>{html.escape(model)}</td>" + "".join(
        f"<td>{html.escape(render(report, model, m))}</td>" for m in metrics) + "</tr>" for model in report["models"])
    return f"<table><tr><th>model</th>{head}</tr>{rows}</table>"


def report_html(report: dict, per_user: dict[str, np.ndarray] | None = None) -> str:
    """A self-contained HTML page (plots embedded) for the comparison ``report``."""
    figures = "".join(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,"
                      f"{data}'>" for title, data in _figures(report, per_user or {}))
    models = "".join(f"<li><b>{html.escape(m)}</b> (<code>{html.escape(str(e.get('model', m)))}</code>): features: "
                     f"{html.escape(_features_text(e))}; hyperparameters: <code>{html.escape(_params_text(e))}</code></li>"
                     for m, e in report["models"].items())
    provenance = html.escape(provenance_line(report["provenance"])) if report.get("provenance") else ""
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.get('name', 'report'))}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(report.get('name', 'comparison'))}</h1>"
            f"<p>Data: {html.escape(str(report.get('data', '')))}<br>Split: {html.escape(str(report.get('split', '')))}"
            f"<br>Protocol: <b>{html.escape(report['protocol'])}</b><br>Seeds: {html.escape(_seeds_text(report))}"
            f"</p><h2>Results</h2><p>▲/▼: significantly better/worse than <code>"
            f"{html.escape(report['reference_model'])}</code> ({html.escape(report.get('significance', ''))}; "
            f"p &lt; 0.05).</p>{_table_html(report, cell)}<h2>p-values (Holm-adjusted)</h2>"
            f"{_table_html(report, p_cell)}{figures}<h2>Models</h2><ul>{models}</ul><h2>Provenance</h2>"
            f"<p>{provenance}</p></body></html>\n")
