"""The stages of one experiment, as plain functions: data -> split -> features -> models -> evaluation.

This module and :mod:`prismrec.experiment` are the only places that know about
:class:`~prismrec.config.ExperimentConfig`; every stage below it takes plain arguments.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.adapt.modes import alignment_run
from prismrec.config import ConfigError, ExperimentConfig, ModelConfig
from prismrec.data.catalog import Dataset
from prismrec.data.interactions import IdMap, Interactions
from prismrec.data.splits import Split, make_split, split_options, subsample_train
from prismrec.evaluation.evaluator import EvaluationResult, Evaluator
from prismrec.io import atomic_write_frame, atomic_write_text
from prismrec.models.registry import create_model, get_model_class


class FeatureNotice(UserWarning):
    """A model was given item features it does not use."""


def load_data(config: ExperimentConfig) -> Dataset:
    """Load the data set named by the config and apply its k-core filter."""
    return load_data_section(config.data, config.source)


def load_data_section(data, source: str) -> Dataset:
    """Load a checked :class:`~prismrec.config.DataConfig`; ``source`` names where it came from in errors."""
    from prismrec.data.loaders import load_dataset

    if data.path is not None and not Path(data.path).exists():
        raise FileNotFoundError(f"{source}: data.path {data.path!r} does not exist (relative paths resolve "
                                "against the config file's folder)")
    try:
        dataset = load_dataset(data.loader, data.path, **data.options)
    except TypeError as error:  # a loader option the signature check could not see
        raise ConfigError(f"{source}: data.options: {error}") from None
    return dataset.k_core(data.k_core) if data.k_core else dataset


def split_data(config: ExperimentConfig, dataset: Dataset, seed: int | None = None) -> Split:
    """The config's split; ``seed`` (when given) replaces the split's own seed option."""
    options = dict(config.split.options)
    if seed is not None and "seed" in split_options(config.split.strategy):
        options["seed"] = seed
    split = make_split(dataset.interactions, config.split.strategy, **options)
    if config.split.train_fraction < 1:
        split = subsample_train(split, config.split.train_fraction, seed=options.get("seed", 0) or 0)
    split.check_disjoint()
    return split


@dataclass
class Features:
    """Named item feature arrays and where each came from (encoder spec and id); ``modules`` holds the
    trainable encoders of ``end2end`` features (``arrays`` then holds their initial output)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    modules: dict = field(default_factory=dict)


def compute_features(config: ExperimentConfig, dataset: Dataset, *, progress: bool = True, log=None) -> Features:
    """Item feature arrays the models need: arrays the loader provides, else encoded via the store."""
    features = Features()
    needed = {name for model in config.models for name in model.features}
    for name in sorted(needed):
        spec = config.features[name]
        if spec.encoder.startswith("dataset:"):
            key = spec.encoder.split(":", 1)[1]
            if key not in dataset.item_features:
                raise KeyError(f"{config.source}: features.{name}: the data set provides no {key!r} array; it has "
                               f"{sorted(dataset.item_features) or 'none'}")
            features.arrays[name] = dataset.item_features[key].astype(np.float32)
            features.info[name] = {"encoder": spec.encoder, "encoder_id": spec.encoder}
            continue
        if spec.encoder_mode == "end2end":
            _end2end_feature(config, name, dataset, features, progress)
            continue
        encoder_spec = prepare_aligned_encoder(config, name, dataset, progress=progress, log=log)
        run = alignment_run(spec)
        options = spec.options  # a fine-tuned encoder's template is its checkpoint's; its towers' states are cached
        if run is not None and run[2] is not None:
            options = {**run[2], "feature_store": config.feature_cache}
        try:
            encoded = encode_item_features(encoder_spec, options, dataset, config.feature_cache, progress)
        except TypeError as error:
            raise ConfigError(f"{config.source}: features.{name}.options: {error}") from None
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{config.source}: features.{name}: {error}") from None
        features.arrays[name] = encoded.features
        features.info[name] = {"encoder": encoder_spec, "encoder_id": encoded.encoder_id,
                               "encoder_mode": spec.encoder_mode,
                               "options": spec.options, "dim": int(encoded.features.shape[1]),
                               "items_with_content": int(encoded.mask.sum()), "n_items": int(len(encoded.mask))}
    return features


def _end2end_feature(config: ExperimentConfig, name: str, dataset: Dataset, features: Features, progress) -> None:
    """Build the trainable encoder of an ``end2end`` feature; its initial output is the feature array."""
    from prismrec.adapt.modes import end2end_encoder

    spec = config.features[name]
    if dataset.catalog is None:
        raise ValueError(f"{config.source}: features.{name} (end2end) needs item content, but data set "
                         f"{dataset.name!r} has no catalog")
    catalog = dataset.catalog.aligned_to(dataset.interactions.items)
    try:
        module = end2end_encoder(spec, catalog, config.feature_cache, progress=progress)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{config.source}: features.{name}: {error}") from None
    features.modules[name] = module
    features.arrays[name] = module.encode_all().numpy()
    features.info[name] = {"encoder": spec.encoder, "encoder_mode": "end2end", "train": spec.train or {},
                           "dim": int(module.dim), "n_items": int(module.n_items),
                           "items_with_content": int(module.text.has_text.sum())}


def prepare_aligned_encoder(config: ExperimentConfig, name: str, dataset: Dataset, *, progress: bool = True,
                            log=None) -> str:
    """The encoder spec of feature ``name``; an alignment it needs is trained here first.

    That is an ``align`` feature with ``train:``, or a ``finetuned`` feature (its text tower is
    adapted in-domain, see :mod:`prismrec.adapt.modes`; a ``text:`` feature then reads
    ``adapted-text:<dir>``). ``encoder: align`` or a ``text:`` feature keeps the checkpoint in
    the feature store, under a folder named by a hash of the data set and the training
    options, so changing either trains anew.
    """
    spec = config.features[name]
    try:
        run = alignment_run(spec)
    except ValueError as error:
        raise ConfigError(f"{config.source}: features.{name}: {error}") from None
    if run is None:
        return spec.encoder
    train, prefix, _ = run
    from prismrec.encoders.align_train import train_alignment

    folder = spec.encoder.partition(":")[2] if spec.encoder.startswith("align:") else ""  # else: in the store
    if not folder:
        digest = hashlib.sha256(json.dumps({"data": repr(dataset), "source": dataset.catalog.source if
                                            dataset.catalog else "", "train": train},
                                           sort_keys=True, default=str).encode()).hexdigest()[:16]
        folder = str(Path(config.feature_cache) / "align" / digest)
    if dataset.catalog is None:
        raise ValueError(f"{config.source}: features.{name} trains an aligned encoder, but data set "
                         f"{dataset.name!r} has no item catalog")
    if log is not None:
        log(f"features.{name}: training the aligned encoder in {folder} (resumes if it was stopped)")
    train_alignment(dataset.catalog.aligned_to(dataset.interactions.items), output_dir=folder,
                    feature_store=config.feature_cache, progress=progress, **train)
    return f"{prefix}:{folder}"


def encode_item_features(encoder_spec: str, options: dict, dataset: Dataset, cache_dir: str,
                         progress: bool = True):
    """Encode the data set's catalog with ``encoder_spec`` through the feature store."""
    from prismrec.encoders.registry import create_encoder
    from prismrec.encoders.store import FeatureStore, encode_catalog

    if dataset.catalog is None:
        raise ValueError(f"encoder {encoder_spec!r} needs item content, but data set {dataset.name!r} has no catalog")
    import prismrec.encoders  # noqa: F401  (registers the built-in encoders)

    encoder = create_encoder(encoder_spec, **options)
    catalog = dataset.catalog.aligned_to(dataset.interactions.items)
    return encode_catalog(encoder, catalog, FeatureStore(cache_dir), progress=progress)


def model_params(model_config: ModelConfig, seed: int | None = None) -> dict:
    """The config's hyperparameters (with tuned values, when ``tuned`` names a tuning result), plus
    ``feature_names`` from the config's features and the run's seed."""
    import inspect

    params = dict(model_config.params)
    if model_config.tuned is not None:
        from prismrec.tuning import load_tuned_params

        params.update(load_tuned_params(model_config.tuned, model_config.name, f"model {model_config.name!r}"))
    accepted = inspect.signature(get_model_class(model_config.registry_name).__init__).parameters
    if model_config.features and "feature_names" in accepted and "feature_names" not in params:
        params["feature_names"] = list(model_config.features)  # e.g. VBPR reads the config's features
    if seed is not None and "seed" in accepted:
        params["seed"] = seed
    return params


def build_models(config: ExperimentConfig, seed: int | None = None) -> list:
    """Create every model of the config and check its features, before any model trains.

    A model that needs features it was not given fails here; one given features it does not
    use gets a :class:`FeatureNotice`.
    """
    models = []
    for position, model_config in enumerate(config.models):
        try:
            model = create_model(model_config.registry_name, model_params(model_config, seed))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{config.source}: models[{position}] ({model_config.name}): {error}") from None
        needed = set(model.required_features_for_fit())
        given = set(model_config.features)
        if needed - given:
            raise ConfigError(
                f"{config.source}: models[{position}] ({model_config.name}) needs item feature(s) "
                f"{sorted(needed - given)}, but its 'features' list gives {sorted(given) or 'none'}")
        if given - needed:
            warnings.warn(f"{model_config.name} ({model_config.registry_name}) does not use item feature(s) "
                          f"{sorted(given - needed)}; they are ignored", FeatureNotice, stacklevel=2)
        models.append((model_config, model))
    return models


def fit_model(model_config: ModelConfig, model, split: Split, features: Features, *, progress: bool = True,
              cold_start_candidates: str = "cold"):
    """Fit one created model on the split's train part (early-stopping on valid); returns seconds.

    On a cold-start item split validation ranks among the valid-cold items, as test does.
    """
    item_features = {name: features.arrays[name] for name in model.required_features_for_fit()}
    modules = {name: features.modules[name].fresh_copy() for name in item_features if name in features.modules}
    if modules:  # end2end: each fit trains its own copy of the encoder's trainable top
        from prismrec.adapt.end2end import attach_item_feature_modules

        attach_item_feature_modules(model, modules, model_config.name)
    candidates, _ = split.ranking_candidates("valid", cold_start_candidates)
    started = time.perf_counter()
    model.fit(split.train, split.valid, item_features=item_features, progress=progress, valid_candidates=candidates)
    return time.perf_counter() - started


MMREC_PROTOCOL = "only train items masked, valid items rankable (MMRec's protocol)"


def evaluate_on_test(model, split: Split, evaluator: Evaluator, *, cold_start_candidates: str = "cold",
                     mask_valid: bool = True) -> EvaluationResult:
    """Test evaluation, masking train and valid items (``mask_valid=False``: train only, as MMRec).

    On a cold-start item split the ranking runs over the cold test items by default
    (``cold_start_candidates="cold"``); ``"all"`` ranks them among every item.
    """
    candidates, label = split.ranking_candidates("test", cold_start_candidates)
    exclude = [split.train, split.valid] if mask_valid else [split.train]
    result = evaluator.evaluate(model, split.test, exclude=exclude, popularity_from=split.train,
                                candidate_items=candidates, candidates_label=label)
    if not mask_valid:
        result.protocol = f"{result.protocol}; {MMREC_PROTOCOL}"
    return result


def make_evaluator(config: ExperimentConfig) -> Evaluator:
    ev = config.evaluation
    ks = sorted(set(ev.ks) | {ev.topk})
    return Evaluator(ks=ks, metrics=ev.metrics, batch_size=ev.batch_size, sampled_negatives=ev.sampled_negatives)


def topk_frame(result: EvaluationResult, interactions: Interactions, k: int) -> pd.DataFrame:
    """Top-k lists as a long frame ``user, rank, item, score`` with raw ids (rank starts at 1)."""
    k = min(k, result.topk.shape[1])
    users = np.repeat(result.users, k)
    items = result.topk[:, :k].reshape(-1)
    frame = pd.DataFrame({
        "user": interactions.users.to_raw(users),
        "rank": np.tile(np.arange(1, k + 1), len(result.users)),
        "item": interactions.items.to_raw(items),
    })
    if result.topk_scores is not None:
        frame["score"] = result.topk_scores[:, :k].reshape(-1)
    return frame


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
    cold_file = folder / "cold_items.txt"
    cold = None
    if cold_file.is_file():
        cold = items.to_index(cold_file.read_text(encoding="utf-8").splitlines())
    return Split(parts["train"], parts["valid"], parts["test"], strategy="saved", cold_items=cold)


def write_split(split: Split, folder: Path) -> None:
    split.to_csv(folder)
    save_id_maps(split, folder)
    if split.cold_items is not None:
        atomic_write_text(folder / "cold_items.txt", "\n".join(split.train.items.to_raw(split.cold_items)) + "\n")
