"""The ``prismrec`` command line: ``demo | fit | evaluate | compare | encode | align | models``.

Each command reads a YAML config (or plain options), calls the Python stages, and turns
expected problems into one readable line on stderr with exit code 2. Results go to stdout;
logs, warnings and progress bars go to stderr (bars only when stderr is a terminal, unless
``--progress`` asks for them).
"""
from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="PrismRec: multimodal recommendation.")
console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)

PROGRESS_HELP = "Progress bars and epoch logs on stderr (default: only when stderr is a terminal)."


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one clean line each (``warning: <message>``), without Python's source lines."""
    console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=True, soft_wrap=True)


def _friendly_errors(command):
    """Print expected errors (bad config, bad data, missing files/weights) as one line and exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from prismrec.config import ConfigError

        warnings.showwarning = _show_warning
        try:
            return command(*args, **kwargs)
        except (ConfigError, FileNotFoundError, KeyError, ValueError, TypeError, ImportError,
                NotADirectoryError, IsADirectoryError) as error:
            if os.environ.get("PRISMREC_DEBUG"):
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _progress(flag: Optional[bool]) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _setup(threads: Optional[int]) -> None:
    import prismrec.models  # noqa: F401  (registers the built-in models)
    from prismrec.threads import set_threads

    if threads:
        set_threads(threads)


def _version(value: bool) -> None:
    if value:
        from prismrec import __version__

        out_console.print(f"prismrec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="Print the version and exit.")) -> None:
    """PrismRec: multimodal recommendation."""


def _log(message: str) -> None:
    console.print(message, highlight=False)


def _load_run_config(config: Path, out: Optional[Path]):
    """Register the models, check ``--out``, read and validate CONFIG, apply its thread count."""
    from prismrec.config import load_config
    from prismrec.experiment import check_output_folder

    _setup(None)
    check_output_folder(out)
    cfg = load_config(config)
    _setup(cfg.threads)
    return cfg


@app.command()
@_friendly_errors
def compare(
    config: Path = typer.Argument(..., help="YAML run description (see configs/)."),
    out: Path = typer.Option(..., "--out", help="Output folder for results, report, split and top-k lists."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1,
                                        help="Rerun the split and every model for N seeds; report mean ± std."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
    save_models: bool = typer.Option(False, "--save-models",
                                     help="Also write each model as a serving bundle to OUT/models/<name>/ "
                                          "(fitted on the first seed's split)."),
) -> None:
    """Fit and evaluate every model of CONFIG on leak-free splits; write a comparison to --out.

    Writes results.json, results.md, report.html, the split CSVs and each model's top-k lists.
    """
    from prismrec.evaluation.report import rich_table
    from prismrec.experiment import run_comparison

    cfg = _load_run_config(config, out)
    report = run_comparison(cfg, out, seeds=seeds, progress=_progress(progress), save_models=save_models, log=_log)
    out_console.print(rich_table(report))
    saved = ", models/<name>/ (serving bundles)" if save_models else ""
    console.print(f"wrote {out}/results.json, results.md, report.html, the split and <model>/topk.csv{saved}")


@app.command()
@_friendly_errors
def fit(
    config: Path = typer.Argument(..., help="YAML run description."),
    out: Path = typer.Option(..., "--out", help="Run folder: model/, split/ and run.json are written here."),
    model: Optional[str] = typer.Option(None, help="Name of the model in the config (default: the first)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Fit one model of CONFIG and save it with its split, ready for `prismrec evaluate`."""
    from dataclasses import asdict

    from prismrec.io import atomic_write_json
    from prismrec.pipeline import build_models, compute_features, fit_model, load_data, split_data, write_split
    from prismrec.provenance import run_provenance

    cfg = _load_run_config(config, out)
    names = [m.name for m in cfg.models]
    if model is not None and model not in names:
        raise KeyError(f"{config}: no model named {model!r}; the config has {names}")
    cfg.models = [m for m in cfg.models if model in (None, m.name)][:1]
    model_config, fitted = build_models(cfg)[0]
    dataset = load_data(cfg)
    split = split_data(cfg, dataset)
    features = compute_features(cfg, dataset, progress=_progress(progress), log=_log)
    seconds = fit_model(model_config, fitted, split, features, progress=_progress(progress))
    write_split(split, out / "split")
    from prismrec.serving.bundle import bundle_from_fit

    bundle_from_fit(out, cfg, model_config, dataset, split, fitted, features.info)  # model/ + what `serve` needs
    atomic_write_json(out / "run.json", {"config": str(config), "model": model_config.name, "fit_seconds": seconds,
                                         "params": fitted.get_params(), "features": features.info,
                                         "evaluation": asdict(cfg.evaluation), "provenance": run_provenance()})
    console.print(f"fitted {model_config.name} in {seconds:.1f}s; saved to {out / 'model'}")


@app.command()
@_friendly_errors
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `prismrec fit`."),
    ks: str = typer.Option("10,20", help="Comma-separated cut-offs."),
    sampled_negatives: Optional[int] = typer.Option(None, help="Sampled mode: positives + N negatives per user."),
    cold_start_candidates: str = typer.Option("cold", help="Cold-start splits: rank among the cold test items "
                                                           "(cold) or among all items (all)."),
) -> None:
    """Evaluate a saved model on its saved test split (train and valid items masked)."""
    from prismrec.evaluation.evaluator import Evaluator
    from prismrec.models.base import Recommender
    from prismrec.pipeline import evaluate_on_test, load_saved_split

    _setup(None)
    try:
        cutoffs = [int(k) for k in ks.split(",")]
    except ValueError:
        raise ValueError(f"--ks must be comma-separated positive integers such as 10,20; got {ks!r}") from None
    if cold_start_candidates not in ("cold", "all"):
        raise ValueError(f"--cold-start-candidates must be 'cold' or 'all', got {cold_start_candidates!r}")
    evaluator = Evaluator(ks=cutoffs, sampled_negatives=sampled_negatives)
    model = Recommender.load(run / "model")
    split = load_saved_split(run / "split")
    result = evaluate_on_test(model, split, evaluator, cold_start_candidates=cold_start_candidates)
    out_console.print_json(json.dumps({"protocol": result.protocol, "metrics": result.summary}))


@app.command()
@_friendly_errors
def models() -> None:
    """List the registered models: what each is, the features it takes, and its hyperparameters."""
    from prismrec.models import available_models, get_model_class

    _setup(None)
    for name in available_models():
        cls = get_model_class(name)
        instance = cls()
        description = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        params = instance.get_params()
        takes = "named item feature arrays (feature_names)" if "feature_names" in params else (
            ", ".join(instance.required_features_for_fit()) or "none (ids only)")
        out_console.print(f"[bold]{name}[/]: {description}", highlight=False)
        out_console.print(f"  features: {takes}", highlight=False, markup=False)
        out_console.print("  hyperparameters: " + (", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"),
                          highlight=False, markup=False)


@app.command()
@_friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder."),
    epochs: int = typer.Option(60, help="Maximum epochs per model (early stopping on valid NDCG@20)."),
    multimodal: bool = typer.Option(True, help="Add VBPR over MiniLM embeddings of titles and genres."),
    cache: Path = typer.Option(Path(".prismrec_cache"), help="Feature store folder."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Compare models on the MovieLens-100k copy that ships inside the recbole package."""
    from prismrec.demo import demo_config
    from prismrec.evaluation.report import rich_table
    from prismrec.experiment import run_comparison

    _setup(2)
    cfg = demo_config(epochs=epochs, multimodal=multimodal, feature_cache=str(cache))
    report = run_comparison(cfg, out, progress=_progress(progress), log=_log)
    out_console.print(rich_table(report))
    console.print(f"wrote {out}/results.md and {out}/report.html")


@app.command()
@_friendly_errors
def tune(
    config: Path = typer.Argument(..., help="YAML run description."),
    out: Path = typer.Option(..., "--out", help="Folder for optuna.db, <model>/trials.csv and best_params.json."),
    model: list[str] = typer.Option([], "--model", help="Model name(s) of the config to tune (default: all)."),
    trials: int = typer.Option(20, min=1, help="Trials per model: every model gets the same budget."),
    metric: str = typer.Option("ndcg@20", help="Validation metric to maximise (the test set is never used)."),
    seed: int = typer.Option(0, help="Seed of the TPE sampler."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Tune hyperparameters with Optuna (TPE) on validation only; evaluate the chosen setting once on test."""
    from prismrec.tuning import tune_models

    cfg = _load_run_config(config, out)
    results = tune_models(cfg, out, models=model or None, trials=trials, metric=metric, seed=seed,
                          progress=_progress(progress), log=_log)
    for name, best in results.items():
        out_console.print(f"{name}: valid {metric}={best['valid_value']:.4f}, tuned {json.dumps(best['tuned'])}, "
                          f"test {metric}={best['test_metrics'].get(metric, float('nan')):.4f}", highlight=False)
    console.print(f"wrote {out}/<model>/best_params.json; use it with models[i].tuned: {out}")


@app.command()
@_friendly_errors
def study(
    config: Path = typer.Argument(..., help="YAML study description (see configs/lmm_study.yaml)."),
    out: Path = typer.Option(..., "--out", help="Folder: one compare run per scenario, plus the study's reports."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
    scenarios: Optional[str] = typer.Option(None, "--scenarios",
                                            help="Comma-separated scenarios to run (e.g. warm@0.1,warm@0.25); "
                                                 "default: every scenario of the study."),
) -> None:
    """Run a grid (encoders x models x paradigms x seeds, warm / cold / sparsity scenarios) as one study."""
    from prismrec.experiment import check_output_folder
    from prismrec.study import load_study, run_study

    _setup(None)
    check_output_folder(out)
    plan = load_study(config)
    chosen = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else None
    _setup(plan.base.get("threads"))
    summary = run_study(plan, out, progress=_progress(progress), log=_log, scenarios=chosen)  # checks the names
    out_console.print(f"{len(summary['scenarios'])} scenarios: {', '.join(summary['scenarios'])}", highlight=False)
    console.print(f"wrote {out}/results.json, results.md and report.html")


from prismrec import cli_content  # noqa: E402,F401  (registers encode and align)


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])


from prismrec import cli_serving  # noqa: E402,F401  (registers `recommend` and `serve`)
from prismrec.cli_foundation import register as _register_foundation  # noqa: E402

_register_foundation(app)  # `prismrec foundation ...` and `prismrec explain`
