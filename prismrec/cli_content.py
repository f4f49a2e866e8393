"""``prismrec encode`` and ``prismrec align``: item content through encoders and the feature store.

Both read their data the same way ``compare`` does: ``--config run.yaml`` (the config's
data section, options and paths), or ``--data LOADER --path PATH`` with ``--data-option``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prismrec.cli import PROGRESS_HELP, _friendly_errors, _log, _progress, _setup, app, console, out_console


def _parse_options(pairs: list[str], flag: str = "--option") -> dict:
    """``["frames=8", "pooling=mean"]`` -> ``{"frames": 8, "pooling": "mean"}`` (numbers and booleans parsed)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} must look like key=value, got {pair!r}")
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


def load_content(config: Optional[Path], data: Optional[str], path: Optional[Path], data_options: list[str]):
    """``(dataset, experiment config or None)`` from ``--config`` or from ``--data/--path/--data-option``."""
    from prismrec.config import ConfigError, DataConfig, load_config
    from prismrec.config_checks import check_data
    from prismrec.pipeline import load_data, load_data_section

    if config is not None:
        if data is not None or path is not None or data_options:
            raise ValueError("give either --config or --data/--path/--data-option, not both")
        cfg = load_config(config)
        dataset = load_data(cfg)
    else:
        if data is None:
            raise ValueError("say which data to read: --config run.yaml, or --data LOADER [--path PATH]")
        cfg = None
        section = DataConfig(loader=data, path=None if path is None else str(path),
                             options=_parse_options(data_options, "--data-option"))
        try:
            check_data(section)
        except ValueError as error:
            raise ConfigError(f"command line: {error}") from None
        dataset = load_data_section(section, "command line")
    if dataset.catalog is None:
        raise ValueError(f"data set {dataset.name!r} has no item catalog to encode; "
                         "the generic loader needs items_path (see docs/data_formats.md)")
    return dataset, cfg


@app.command()
@_friendly_errors
def encode(
    config: Optional[Path] = typer.Option(None, "--config", help="Read the data (and --feature) from this run config."),
    feature: Optional[str] = typer.Option(None, help="Encode this feature of --config (its encoder and options)."),
    data: Optional[str] = typer.Option(None, help="Loader name, e.g. movielens_100k, recbole_ml100k, generic."),
    path: Optional[Path] = typer.Option(None, help="Data path for the loader."),
    data_option: list[str] = typer.Option([], "--data-option", help="Loader option key=value, e.g. items_path=..."),
    encoder: Optional[str] = typer.Option(None, help="Encoder spec, e.g. text:minilm, image:efficientnet-lite0."),
    option: list[str] = typer.Option([], "--option", help="Encoder option key=value (repeatable), e.g. template=..."),
    cache: Optional[Path] = typer.Option(None, help="Feature store folder (default: the config's feature_cache, "
                                                    "else .prismrec_cache)."),
    out: Optional[Path] = typer.Option(None, help="Also write the features (.npy) and mask (.mask.npy) here."),
    batch_size: int = typer.Option(32),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Encode a catalog's items through the resumable feature store and report failures."""
    import numpy as np

    import prismrec.encoders  # noqa: F401  (registers the built-in encoders)
    from prismrec.encoders.registry import create_encoder
    from prismrec.encoders.store import FeatureStore, encode_catalog
    from prismrec.io import atomic_path

    _setup(2)
    dataset, cfg = load_content(config, data, path, data_option)
    options = _parse_options(option)
    if feature is not None:
        if cfg is None or feature not in cfg.features:
            known = sorted(cfg.features) if cfg is not None else []
            raise ValueError(f"--feature {feature!r} needs a --config that defines it (defined: {known or 'none'})")
        encoder = encoder or cfg.features[feature].encoder
        options = {**cfg.features[feature].options, **options}
    if encoder is None:
        raise ValueError("say which encoder to use: --encoder SPEC, or --config run.yaml --feature NAME")
    store = cache or Path(cfg.feature_cache if cfg is not None else ".prismrec_cache")
    item_encoder = create_encoder(encoder, **options)
    catalog = dataset.catalog.aligned_to(dataset.interactions.items)
    result = encode_catalog(item_encoder, catalog, FeatureStore(store), batch_size=batch_size,
                            progress=_progress(progress))
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
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoint/, alignment_report.json and .md."),
    config: Optional[Path] = typer.Option(None, "--config", help="Read the data from this run config."),
    data: Optional[str] = typer.Option(None, help="Loader name of a data set with images and text."),
    path: Optional[Path] = typer.Option(None, help="Data path for the loader."),
    data_option: list[str] = typer.Option([], "--data-option", help="Loader option key=value, e.g. items_path=..."),
    text_encoder: str = typer.Option("text:minilm"),
    image_encoder: str = typer.Option("image:efficientnet-lite0"),
    template: Optional[str] = typer.Option(None, help='Text template, e.g. "{title}. {plot}".'),
    objective: str = typer.Option("contrastive", help="contrastive (symmetric InfoNCE) or reconstructive."),
    epochs: int = typer.Option(10, help="Held-out recall peaks early on small catalogues; 10 is a safe default."),
    batch_size: int = typer.Option(128),
    learning_rate: float = typer.Option(1e-3),
    shared_dim: int = typer.Option(256),
    seed: int = typer.Option(0),
    adaptation: str = typer.Option("none", help="Also train the text tower's top: none, lora, adapter, prompt "
                                                "or full (a BERT-style text:... tower)."),
    adaptation_option: list[str] = typer.Option([], "--adapt",
                                                help="key=value of prismrec.adapt.AdaptationConfig, e.g. "
                                                     "trainable_layers=1, max_seq_length=128, lora_rank=8."),
    resume: bool = typer.Option(True, help="Continue from the last checkpoint in --out."),
    cache: Optional[Path] = typer.Option(None, help="Feature store for the towers' features (default: the "
                                                    "config's feature_cache, else .prismrec_cache)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Train PrismRec's CLIP-style aligned encoder on in-domain image-text pairs; report retrieval."""
    import prismrec.encoders  # noqa: F401
    from prismrec.encoders.align_train import train_alignment

    _setup(2)
    dataset, cfg = load_content(config, data, path, data_option)
    store = cache or Path(cfg.feature_cache if cfg is not None else ".prismrec_cache")
    _log(f"aligning {dataset!r}")
    report = train_alignment(
        dataset.catalog.aligned_to(dataset.interactions.items), text_encoder=text_encoder,
        image_encoder=image_encoder, text_template=template, objective=objective, shared_dim=shared_dim,
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, output_dir=out,
        feature_store=store, resume=resume, progress=_progress(progress), adaptation=adaptation,
        adaptation_options=_parse_options(adaptation_option, "--adapt"))
    out_console.print(report.to_markdown(), highlight=False, markup=False)
    console.print(f"checkpoint: {out}; use it as encoder spec align:{out}" +
                  (f" (or adapted-text:{out} for the adapted text tower alone)" if adaptation != "none" else ""))
