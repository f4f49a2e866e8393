"""Wire the stages together for one experiment: data -> split -> features -> models -> report.

Every stage is an ordinary function taking plain arguments, so this module is the only
place that knows about :class:`~prismrec.config.ExperimentConfig`.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.config import ExperimentConfig, ModelConfig
from prismrec.data.catalog import Dataset
from prismrec.data.interactions import IdMap, Interactions
from prismrec.data.splits import Split, make_split
from prismrec.evaluation.evaluator import EvaluationResult, Evaluator
from prismrec.evaluation.report import ModelRun, build_report, markdown_table
from prismrec.io import atomic_write_frame, atomic_write_json, atomic_write_text
from prismrec.models.registry import create_model


def load_data(config: ExperimentConfig) -> Dataset:
    """Load the data set named by the config and apply its k-core filter."""
    from prismrec.data.loaders import load_dataset

    data = config.data
    path = data.path
    if path is not None and not Path(path).exists():
        relative = Path(config.source).parent / path
        path = str(relative) if relative.exists() else path
    dataset = load_dataset(data.loader, path, **data.options)
    return dataset.k_core(data.k_core) if data.k_core else dataset


def split_data(config: ExperimentConfig, dataset: Dataset) -> Split:
    return make_split(dataset.interactions, config.split.strategy, **config.split.options)


def compute_features(config: ExperimentConfig, dataset: Dataset, *, progress: bool = True) -> dict[str, np.ndarray]:
    """Item feature arrays named in the config: arrays the loader provides, else encoded via the store."""
    features = {}
    needed = {name for model in config.models for name in model.features}
    for name in sorted(needed):
        spec = config.features[name]
        if spec.encoder.startswith("dataset:"):
            key = spec.encoder.split(":", 1)[1]
            if key not in dataset.item_features:
                raise KeyError(f"feature {name!r}: the data set provides no {key!r} array; "
                               f"it has {sorted(dataset.item_features) or 'none'}")
            features[name] = dataset.item_features[key].astype(np.float32)
            continue
        features[name] = encode_item_features(spec.encoder, spec.options, dataset, config.feature_cache, progress)
    return features


def encode_item_features(encoder_spec: str, options: dict, dataset: Dataset, cache_dir: str,
                         progress: bool = True) -> np.ndarray:
    """Encode the data set's catalog with ``encoder_spec`` through the feature store."""
    from prismrec.encoders.registry import create_encoder
    from prismrec.encoders.store import FeatureStore, encode_catalog

    if dataset.catalog is None:
        raise ValueError(f"encoder {encoder_spec!r} needs item content, but data set {dataset.name!r} has no catalog")
    import prismrec.encoders  # noqa: F401  (registers the built-in encoders)

    encoder = create_encoder(encoder_spec, **options)
    catalog = dataset.catalog.aligned_to(dataset.interactions.items)
    encoded = encode_catalog(encoder, catalog, FeatureStore(cache_dir), progress=progress)
    return encoded.features


def fit_model(model_config: ModelConfig, split: Split, features: dict[str, np.ndarray], *, progress: bool = True):
    """Create and fit one model; returns ``(model, seconds)``."""
    params = dict(model_config.params)
    if model_config.features and "feature_names" not in params:
        import inspect

        from prismrec.models.registry import get_model_class

        if "feature_names" in inspect.signature(get_model_class(model_config.registry_name).__init__).parameters:
            params["feature_names"] = list(model_config.features)  # e.g. VBPR reads the config's features
    model = create_model(model_config.registry_name, params)
    item_features = {name: features[name] for name in model_config.features}
    started = time.perf_counter()
    model.fit(split.train, split.valid, item_features=item_features, progress=progress)
    return model, time.perf_counter() - started


def evaluate_on_test(model, split: Split, evaluator: Evaluator) -> EvaluationResult:
    """Full-ranking (or sampled) test evaluation, masking train and valid items."""
    return evaluator.evaluate(model, split.test, exclude=[split.train, split.valid], popularity_from=split.train)


def make_evaluator(config: ExperimentConfig) -> Evaluator:
    ev = config.evaluation
    ks = sorted(set(ev.ks) | {ev.topk})
    return Evaluator(ks=ks, metrics=ev.metrics, batch_size=ev.batch_size, sampled_negatives=ev.sampled_negatives)


def topk_frame(result: EvaluationResult, interactions: Interactions, k: int) -> pd.DataFrame:
    """Top-k lists as a long frame ``user, rank, item`` with raw ids (rank starts at 1)."""
    k = min(k, result.topk.shape[1])
    users = np.repeat(result.users, k)
    items = result.topk[:, :k].reshape(-1)
    return pd.DataFrame({
        "user": interactions.users.to_raw(users),
        "rank": np.tile(np.arange(1, k + 1), len(result.users)),
        "item": interactions.items.to_raw(items),
    })


def save_id_maps(split: Split, folder: Path) -> None:
    atomic_write_text(folder / "users.txt", "\n".join(split.train.users.raw_ids) + "\n")
    atomic_write_text(folder / "items.txt", "\n".join(split.train.items.raw_ids) + "\n")


def load_saved_split(folder: str | Path) -> Split:
    """Rebuild a split written by :func:`write_split` (train/valid/test CSVs + id maps)."""
    folder = Path(folder)
    users = IdMap((folder / "users.txt").read_text(encoding="utf-8").splitlines())
    items = IdMap((folder / "items.txt").read_text(encoding="utf-8").splitlines())
    parts = {}
    for name in ("train", "valid", "test"):
        frame = pd.read_csv(folder / f"{name}.csv", dtype={"user": str, "item": str})
        time_col = "timestamp" if "timestamp" in frame.columns else None
        parts[name] = Interactions.from_frame(frame, time_col=time_col, users=users, items=items,
                                              source=str(folder / f"{name}.csv"))
    return Split(parts["train"], parts["valid"], parts["test"], strategy="saved")


def write_split(split: Split, folder: Path) -> None:
    split.to_csv(folder)
    save_id_maps(split, folder)


def run_comparison(config: ExperimentConfig, out_dir: str | Path | None = None, *, progress: bool = True,
                   log=print) -> dict:
    """Fit and evaluate every model of ``config`` on one split; write the outputs to ``out_dir``.

    Writes ``results.json``, ``results.md``, ``split/{train,valid,test}.csv`` and
    ``<model>/topk.csv`` (+ ``<model>/per_user.npz``) so anyone can recompute the metrics.
    """
    out = Path(out_dir) if out_dir is not None else None
    dataset = load_data(config)
    log(f"data: {dataset!r}")
    split = split_data(config, dataset)
    split.check_disjoint()
    log(f"split: {split!r}")
    if out is not None:
        write_split(split, out / "split")
    features = compute_features(config, dataset, progress=progress)
    evaluator = make_evaluator(config)
    runs = []
    for model_config in config.models:
        log(f"fitting {model_config.name} ...")
        model, seconds = fit_model(model_config, split, features, progress=progress)
        result = evaluate_on_test(model, split, evaluator)
        info = {"model": model_config.registry_name, "params": model.get_params()}
        if hasattr(model, "best_epoch_"):
            info["best_epoch"] = int(model.best_epoch_)
        runs.append(ModelRun(model_config.name, result, seconds, info))
        log(f"  {model_config.name}: fit {seconds:.1f}s, " +
            ", ".join(f"{k}={result.summary[k]:.4f}" for k in list(result.summary)[:4]))
        if out is not None:
            atomic_write_frame(topk_frame(result, split.train, config.evaluation.topk), out / model_config.name / "topk.csv")
            result.save(out / model_config.name / "per_user.npz")
    headline = config.evaluation.headline or [
        evaluator.metric_key(m, k) for m in ("recall", "ndcg") if m in evaluator.metrics for k in evaluator.ks]
    context = {"name": config.name, "data": repr(dataset), "split": repr(split),
               "config": {"data": asdict(config.data), "split": asdict(config.split)}}
    report = build_report(runs, headline=headline, context=context)
    if out is not None:
        atomic_write_json(out / "results.json", report)
        atomic_write_text(out / "results.md", f"# {config.name}\n\n{report['data']}\n\n{report['split']}\n\n"
                          + markdown_table(report))
    return report
