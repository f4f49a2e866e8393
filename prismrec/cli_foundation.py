"""``prismrec foundation train | evaluate | explanations`` and ``prismrec explain``.

A typer sub-app kept apart from :mod:`prismrec.cli`, which only mounts it
(:func:`register`). ``train`` checkpoints every epoch into ``RUN/checkpoint`` and resumes
from there when run again; every run writes ``results.json`` and ``results.md`` like
``compare`` does.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

foundation_app = typer.Typer(add_completion=False, no_args_is_help=True,
                             help="The VIP5-style foundation model: train, evaluate, explanations.")


def _cli():
    from prismrec import cli  # the main module owns the console and the error handling

    return cli


def _evaluation_report(model, split, name: str, ks, metrics, sampled_negatives: int) -> tuple[dict, object]:
    """Full ranking and sampled (1 positive + N negatives, labelled) results of one model."""
    from prismrec.evaluation.evaluator import Evaluator
    from prismrec.evaluation.report import ModelRun, build_report
    from prismrec.pipeline import evaluate_on_test

    full = evaluate_on_test(model, split, Evaluator(ks=ks, metrics=metrics))
    sampled = evaluate_on_test(model, split, Evaluator(ks=ks, metrics=metrics, sampled_negatives=sampled_negatives))
    info = {"params": model.get_params(), "id_scheme": getattr(model, "id_scheme_label_", None),
            "tuning": getattr(model, "tuning_report_", None), "epoch_seconds": getattr(model, "epoch_seconds_", None),
            "best_epoch": getattr(model, "best_epoch_", None), "sampled_metrics": sampled.summary}
    report = build_report([ModelRun.single(name, full, 0.0, info)],
                          context={"sampled_protocol": sampled.protocol, "note": "sampled metrics are labelled /sampledN"})
    if getattr(model, "direct_share", 0) > 0:
        from prismrec.foundation.direct import evaluate_direct

        direct = evaluate_direct(model, split, n_negatives=sampled_negatives, ks=ks)
        report["direct"] = {"protocol": direct["protocol"], "summary": direct["summary"]}
    return report, full


def _run_record(started: dict, config: dict) -> dict:
    """The reproducibility fields every results file carries: the full config (seeds included),
    and the version, commit and date the run started from, with the date it finished."""
    from prismrec.provenance import run_provenance

    return {"config": config, "provenance": {**started, "finished": run_provenance()["date"]}}


def _write_report(run: Path, report: dict, title: str) -> None:
    from prismrec.evaluation.report import markdown_table
    from prismrec.io import atomic_write_json, atomic_write_text

    atomic_write_json(run / "results.json", report)
    lines = [f"# {title}", "", f"protocol: {report['protocol']}", ""]
    for name, entry in report["models"].items():
        if entry.get("id_scheme"):
            lines.append(f"- {name}: {entry['id_scheme']}")
        if entry.get("sampled_metrics"):
            sampled = ", ".join(f"{k}={v:.4f}" for k, v in entry["sampled_metrics"].items() if "/sampled" in k
                                and k.split("@")[0] in ("hit", "ndcg"))
            lines.append(f"- {name}, {report['sampled_protocol']}: {sampled}")
    if "direct" in report:
        direct = ", ".join(f"{k}={v:.4f}" for k, v in report["direct"]["summary"].items())
        lines.append(f"- direct task, {report['direct']['protocol']}: {direct}")
    atomic_write_text(run / "results.md", "\n".join(lines) + "\n\n" + markdown_table(report))


@foundation_app.command("train")
def train(
    config: Path = typer.Argument(..., help="YAML run description (the first 'foundation' model is trained)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint/, model/, split/, results.*"),
    model: Optional[str] = typer.Option(None, help="Name of the model entry in the config."),
    sampled_negatives: int = typer.Option(99, help="Also report 1 positive + N sampled negatives (labelled)."),
    progress: Optional[bool] = typer.Option(None, help="Show progress bars (default: when stderr is a terminal)."),
) -> None:
    """Train the foundation model of CONFIG (resuming from OUT/checkpoint), then evaluate it."""
    cli = _cli()

    @cli._friendly_errors
    def run() -> None:
        from prismrec.config import load_config
        from prismrec.io import atomic_write_json
        from dataclasses import asdict

        from prismrec.pipeline import build_models, compute_features, fit_model, load_data, split_data, write_split
        from prismrec.provenance import run_provenance

        started = run_provenance()
        cli._setup(None)
        cfg = load_config(config)
        cli._setup(cfg.threads)
        chosen = [m for m in cfg.models if (m.name == model if model else m.registry_name == "foundation")]
        if not chosen:
            raise KeyError(f"{config}: no {'model named ' + repr(model) if model else 'foundation model'}; "
                           f"the config has {[m.name for m in cfg.models]}")
        chosen[0].params.setdefault("checkpoint_dir", str(out / "checkpoint"))  # resume from here
        cfg.models = chosen[:1]
        entry, fitted = build_models(cfg)[0]
        dataset = load_data(cfg)
        split = split_data(cfg, dataset)
        split.check_disjoint()
        write_split(split, out / "split")
        features = compute_features(cfg, dataset, progress=cli._progress(progress), log=cli._log)
        seconds = fit_model(entry, fitted, split, features, progress=cli._progress(progress))
        fitted.save(out / "model")
        record = {"source": str(config), "name": cfg.name, "data": asdict(cfg.data), "split": asdict(cfg.split),
                  "features": {n: asdict(f) for n, f in cfg.features.items()}, "evaluation": asdict(cfg.evaluation),
                  "threads": cfg.threads, "model": entry.name, "params": fitted.get_params(),
                  "seed": fitted.get_params().get("seed"), "sampled_negatives": sampled_negatives}
        atomic_write_json(out / "run.json", {"config": str(config), "model": entry.name, "fit_seconds": seconds,
                                             "params": fitted.get_params(), "run_config": record,
                                             "provenance": started})
        report, _ = _evaluation_report(fitted, split, entry.name, cfg.evaluation.ks, cfg.evaluation.metrics,
                                       sampled_negatives)
        report["models"][entry.name]["fit_seconds"] = round(seconds, 1)
        report.update(_run_record(started, record))
        _write_report(out, report, f"{cfg.name}: {entry.name}")
        cli.console.print(f"trained {entry.name} in {seconds:.1f}s; wrote {out}/results.json, results.md, model/")

    run()


@foundation_app.command("evaluate")
def evaluate(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="Run folder written by `prismrec foundation train`."),
    ks: str = typer.Option("5,10", help="Comma-separated cut-offs."),
    sampled_negatives: int = typer.Option(99, help="Sampled protocol: 1 positive + N negatives (labelled)."),
    template: Optional[str] = typer.Option(None, help="Prompt template, e.g. a held-out one for zero-shot "
                                                      "(sequential-5); default: the model's eval_template."),
) -> None:
    """Evaluate a trained run on its saved test split; rewrites RUN/results.json and results.md."""
    cli = _cli()

    @cli._friendly_errors
    def run() -> None:
        from prismrec.models.base import Recommender
        from prismrec.pipeline import load_saved_split
        from prismrec.provenance import run_provenance

        at_start = run_provenance()
        cli._setup(None)
        if not (run_dir / "model" / "config.json").is_file():
            raise FileNotFoundError(f"{run_dir}: no trained model here (expected model/config.json); "
                                    f"run `prismrec foundation train CONFIG --out {run_dir}` first")
        model = Recommender.load(run_dir / "model")
        if template is not None:
            from prismrec.foundation.prompts import template_named

            if template_named(template).family != "sequential":
                raise ValueError(f"template {template!r} is not a sequential template")
            model.eval_template = template
        split = load_saved_split(run_dir / "split")
        model.use_history(split.train, split.valid)
        started = time.perf_counter()
        report, full = _evaluation_report(model, split, "foundation", [int(k) for k in ks.split(",")],
                                          ("hit", "ndcg", "recall"), sampled_negatives)
        report["evaluate_seconds"] = round(time.perf_counter() - started, 1)
        report["template"] = model.eval_template
        trained = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
        report.update(_run_record(at_start, {"trained_with": trained.get("run_config", trained.get("config")),
                                            "trained_provenance": trained.get("provenance"), "ks": ks,
                                            "sampled_negatives": sampled_negatives, "template": model.eval_template,
                                            "params": model.get_params()}))
        _write_report(run_dir, report, f"{run_dir.name}: evaluation")
        cli.out_console.print_json(json.dumps({"protocol": full.protocol, "metrics": full.summary}))

    run()


def register(app: typer.Typer) -> None:
    """Mount ``foundation ...`` and ``explain`` on the main app (the one line in :mod:`prismrec.cli`)."""
    from prismrec.cli_explain import explain, explanations

    foundation_app.command("explanations")(explanations)
    app.add_typer(foundation_app, name="foundation")
    app.command("explain")(explain)
