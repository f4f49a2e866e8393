"""The ``prismrec`` command line: ``demo | fit | evaluate | compare | encode | align | models``.

Each command reads a YAML config (or plain options), calls the Python stages, and turns
expected problems into one readable line on stderr with exit code 2.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="PrismRec: multimodal recommendation.")
console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)


def _friendly_errors(command):
    """Print expected errors (bad config, bad data, missing files/weights) as one line and exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from prismrec.config import ConfigError

        try:
            return command(*args, **kwargs)
        except (ConfigError, FileNotFoundError, KeyError, ValueError, TypeError, ImportError) as error:
            if os.environ.get("PRISMREC_DEBUG"):
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _setup(threads: Optional[int]) -> None:
    import torch

    import prismrec.models  # noqa: F401  (registers the built-in models)

    if threads:
        torch.set_num_threads(threads)


@app.command()
@_friendly_errors
def compare(
    config: Path = typer.Argument(..., help="YAML run description (see configs/)."),
    out: Path = typer.Option(..., "--out", help="Output folder for results, split and top-k lists."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Fit and evaluate every model of CONFIG on one leak-free split; write a comparison to --out."""
    from prismrec.config import load_config
    from prismrec.evaluation.report import rich_table
    from prismrec.pipeline import run_comparison

    _setup(None)
    cfg = load_config(config)
    _setup(cfg.threads)
    report = run_comparison(cfg, out, progress=progress, log=lambda msg: console.print(msg, highlight=False))
    out_console.print(rich_table(report))
    console.print(f"wrote {out}/results.json, results.md, split/ and <model>/topk.csv")


@app.command()
@_friendly_errors
def fit(
    config: Path = typer.Argument(..., help="YAML run description."),
    out: Path = typer.Option(..., "--out", help="Run folder: model/, split/ and config.json are written here."),
    model: Optional[str] = typer.Option(None, help="Name of the model in the config (default: the first)."),
    progress: bool = typer.Option(True),
) -> None:
    """Fit one model of CONFIG and save it with its split, ready for `prismrec evaluate`."""
    from prismrec.config import load_config
    from prismrec.io import atomic_write_json
    from prismrec.pipeline import compute_features, fit_model, load_data, split_data, write_split

    _setup(None)
    cfg = load_config(config)
    _setup(cfg.threads)
    chosen = [m for m in cfg.models if model in (None, m.name)]
    if not chosen:
        raise KeyError(f"{config}: no model named {model!r}; the config has {[m.name for m in cfg.models]}")
    dataset = load_data(cfg)
    split = split_data(cfg, dataset)
    split.check_disjoint()
    features = compute_features(cfg, dataset, progress=progress)
    fitted, seconds = fit_model(chosen[0], split, features, progress=progress)
    write_split(split, out / "split")
    fitted.save(out / "model")
    atomic_write_json(out / "run.json", {"config": str(config), "model": chosen[0].name, "fit_seconds": seconds,
                                         "evaluation": vars(cfg.evaluation)})
    console.print(f"fitted {chosen[0].name} in {seconds:.1f}s; saved to {out / 'model'}")


@app.command()
@_friendly_errors
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `prismrec fit`."),
    ks: str = typer.Option("10,20", help="Comma-separated cut-offs."),
    sampled_negatives: Optional[int] = typer.Option(None, help="Sampled mode: positives + N negatives."),
) -> None:
    """Evaluate a saved model on its saved test split (train and valid items masked)."""
    from prismrec.evaluation.evaluator import Evaluator
    from prismrec.models.base import Recommender
    from prismrec.pipeline import evaluate_on_test, load_saved_split

    _setup(None)
    model = Recommender.load(run / "model")
    split = load_saved_split(run / "split")
    evaluator = Evaluator(ks=[int(k) for k in ks.split(",")], sampled_negatives=sampled_negatives)
    result = evaluate_on_test(model, split, evaluator)
    out_console.print_json(json.dumps({"protocol": result.protocol, "metrics": result.summary}))


@app.command()
@_friendly_errors
def models() -> None:
    """List the registered models."""
    from prismrec.models import available_models

    _setup(None)
    out_console.print("\n".join(available_models()))


def _parse_options(pairs: list[str]) -> dict:
    """``["frames=8", "pooling=mean"]`` -> ``{"frames": 8, "pooling": "mean"}`` (numbers and booleans parsed)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option must look like key=value, got {pair!r}")
        options[key] = _scalar(value)
    return options


def _scalar(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _load_for_content(data: str, path: Optional[Path]):
    from prismrec.data.loaders import load_dataset

    dataset = load_dataset(data, None if path is None else str(path))
    if dataset.catalog is None:
        raise ValueError(f"data set {dataset.name!r} (loader {data!r}) has no item catalog to encode")
    return dataset


@app.command()
@_friendly_errors
def encode(
    data: str = typer.Option(..., help="Loader name, e.g. movielens_100k, recbole_ml100k, generic."),
    encoder: str = typer.Option(..., help="Encoder spec, e.g. text:minilm, image:efficientnet-lite0, align:DIR."),
    path: Optional[Path] = typer.Option(None, help="Data path for the loader."),
    option: list[str] = typer.Option([], "--option", help="Encoder option key=value (repeatable), e.g. template=..."),
    cache: Path = typer.Option(Path(".prismrec_cache"), help="Feature store folder."),
    out: Optional[Path] = typer.Option(None, help="Also write the features (.npy) and mask (.mask.npy) here."),
    batch_size: int = typer.Option(32),
    progress: bool = typer.Option(True),
) -> None:
    """Encode a catalog's items through the resumable feature store and report failures."""
    import numpy as np

    import prismrec.encoders  # noqa: F401  (registers the built-in encoders)
    from prismrec.encoders.registry import create_encoder
    from prismrec.encoders.store import FeatureStore, encode_catalog
    from prismrec.io import atomic_path

    _setup(2)
    dataset = _load_for_content(data, path)
    item_encoder = create_encoder(encoder, **_parse_options(option))
    catalog = dataset.catalog.aligned_to(dataset.interactions.items)
    result = encode_catalog(item_encoder, catalog, FeatureStore(cache), batch_size=batch_size, progress=progress)
    out_console.print(str(result.report), highlight=False, markup=False)
    if out is not None:
        for target, array in ((out, result.features), (out.with_suffix(".mask.npy"), result.mask)):
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, array)
        console.print(f"wrote {out} {result.features.shape} and {out.with_suffix('.mask.npy')}")


@app.command()
@_friendly_errors
def align(
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoint/, report.json, report.md."),
    data: str = typer.Option("movielens_100k", help="Loader name of a data set with images and text."),
    path: Optional[Path] = typer.Option(None, help="Data path for the loader."),
    text_encoder: str = typer.Option("text:minilm"),
    image_encoder: str = typer.Option("image:efficientnet-lite0"),
    template: Optional[str] = typer.Option(None, help='Text template, e.g. "{title}. {plot}".'),
    objective: str = typer.Option("contrastive", help="contrastive (symmetric InfoNCE) or reconstructive."),
    epochs: int = typer.Option(10, help="Held-out recall peaks early on small catalogues; 10 is a safe default."),
    batch_size: int = typer.Option(128),
    learning_rate: float = typer.Option(1e-3),
    shared_dim: int = typer.Option(256),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(True, help="Continue from the last checkpoint in --out."),
    cache: Path = typer.Option(Path(".prismrec_cache"), help="Feature store for the towers' features."),
    progress: bool = typer.Option(True),
) -> None:
    """Train PrismRec's CLIP-style aligned encoder on in-domain image-text pairs; report retrieval."""
    import prismrec.encoders  # noqa: F401
    from prismrec.encoders.align_train import train_alignment

    _setup(2)
    dataset = _load_for_content(data, path)
    report = train_alignment(
        dataset.catalog, text_encoder=text_encoder, image_encoder=image_encoder, text_template=template,
        objective=objective, shared_dim=shared_dim, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, output_dir=out, feature_store=cache, resume=resume,
        progress=progress)
    out_console.print(report.to_markdown(), highlight=False, markup=False)
    console.print(f"checkpoint: {out}; use it as encoder spec align:{out}")


@app.command()
@_friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder."),
    epochs: int = typer.Option(60, help="Maximum epochs per model (early stopping on valid NDCG@20)."),
    multimodal: bool = typer.Option(True, help="Add VBPR over MiniLM embeddings of titles and genres."),
    cache: Path = typer.Option(Path(".prismrec_cache"), help="Feature store folder."),
    progress: bool = typer.Option(True),
) -> None:
    """Compare models on the MovieLens-100k copy that ships inside the recbole package."""
    from prismrec.demo import demo_config
    from prismrec.evaluation.report import rich_table
    from prismrec.pipeline import run_comparison

    _setup(2)
    cfg = demo_config(epochs=epochs, multimodal=multimodal, feature_cache=str(cache))
    report = run_comparison(cfg, out, progress=progress, log=lambda msg: console.print(msg, highlight=False))
    out_console.print(rich_table(report))
    console.print(f"wrote {out}/results.md")


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])


from prismrec.cli_foundation import register as _register_foundation  # noqa: E402

_register_foundation(app)  # `prismrec foundation ...` and `prismrec explain`
