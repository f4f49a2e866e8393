"""A serving bundle: one folder holding everything ``prismrec serve`` needs.

Layout::

    RUN/
      bundle.json         format version, model name, the feature sources, sizes
      model/              the fitted model (Recommender.save: config.json + weights.safetensors)
      users.json          raw user ids in index order
      items.json          raw item ids in index order
      catalog.parquet     item content (text fields, media paths made absolute), optional
      seen.parquet        training interactions (user, item indices) for exclude-seen
      index/              optional: the HNSW graph of the item vectors, built ahead (build_bundle_index)

Each feature source names the encoder spec and options the model's features came from,
plus the encoder id (which hashes the weights), so the server encodes new items with the
same encoder and refuses one whose weights changed.

Example:
    >>> write_bundle("runs/bpr", model=model, train=split.train, catalog=catalog)  # doctest: +SKIP
    >>> bundle = load_bundle("runs/bpr")  # doctest: +SKIP
    >>> bundle.model.recommend(bundle.users.to_index(["u1"]), k=10, exclude=bundle.train)  # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prismrec.data.catalog import ItemCatalog
from prismrec.data.interactions import IdMap, Interactions
from prismrec.io import atomic_write_frame, atomic_write_json, atomic_write_text

BUNDLE_FORMAT = 1
BUNDLE_INDEX_DIR = "index"


@dataclass
class FeatureSource:
    """Where one named feature array came from: ``encoder`` spec + ``options``, or ``dataset:<key>``."""

    name: str
    encoder: str
    options: dict = field(default_factory=dict)
    encoder_id: str | None = None

    @property
    def can_encode(self) -> bool:
        return not self.encoder.startswith("dataset:")


@dataclass
class Bundle:
    """A loaded bundle (see the module docstring)."""

    path: Path
    model: object
    users: IdMap
    items: IdMap
    train: Interactions
    catalog: ItemCatalog | None
    features: list[FeatureSource]
    info: dict


def write_bundle(folder: str | Path, *, model, train: Interactions, catalog: ItemCatalog | None = None,
                 features: list[FeatureSource] = (), info: dict | None = None) -> Path:
    """Write a bundle for ``model`` fitted on ``train`` (all files atomically; ``bundle.json`` last)."""
    from prismrec.models.registry import name_of

    folder = Path(folder)
    model.save(folder / "model")
    atomic_write_text(folder / "users.json", json.dumps(list(train.users.raw_ids)))
    atomic_write_text(folder / "items.json", json.dumps(list(train.items.raw_ids)))
    atomic_write_frame(pd.DataFrame({"user": train.user_index, "item": train.item_index}), folder / "seen.parquet")
    if catalog is not None:
        atomic_write_frame(catalog_frame(catalog.aligned_to(train.items)), folder / "catalog.parquet")
    atomic_write_json(folder / "bundle.json", {
        "format_version": BUNDLE_FORMAT, "model": name_of(type(model)), "n_users": train.n_users,
        "n_items": train.n_items, "has_catalog": catalog is not None,
        "features": [asdict(source) for source in features], "info": info or {}})
    return folder


def catalog_frame(catalog: ItemCatalog) -> pd.DataFrame:
    """The catalogue as columns ``item``, ``text:<field>``..., ``media:<kind>``... (media paths absolute)."""
    columns = {"item": catalog.item_ids.astype(str)}
    columns.update({f"text:{name}": values for name, values in catalog.text.items()})
    for kind, paths in catalog.media.items():
        columns[f"media:{kind}"] = [None if p is None else str(Path(p).resolve()) for p in paths]
    return pd.DataFrame(columns)


def frame_catalog(frame: pd.DataFrame, source: str) -> ItemCatalog:
    """Inverse of :func:`catalog_frame`."""
    def values(column):
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in frame[column]]

    return ItemCatalog(
        item_ids=frame["item"].astype(str).tolist(),
        text={c.split(":", 1)[1]: values(c) for c in frame.columns if c.startswith("text:")},
        media={c.split(":", 1)[1]: values(c) for c in frame.columns if c.startswith("media:")},
        source=source)


def load_bundle(folder: str | Path) -> Bundle:
    """Read a bundle written by :func:`write_bundle`; errors name the missing or mismatched file."""
    import prismrec.models  # noqa: F401  (registers the built-in models)
    from prismrec.models.base import Recommender

    folder = Path(folder)
    manifest_path = folder / "bundle.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not a serving bundle (write one with `prismrec fit CONFIG "
                                "--out RUN` or prismrec.serving.write_bundle)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != BUNDLE_FORMAT:
        raise ValueError(f"{manifest_path}: bundle format {manifest.get('format_version')!r}, "
                         f"this PrismRec reads format {BUNDLE_FORMAT}")
    model = Recommender.load(folder / "model")
    users = IdMap(json.loads((folder / "users.json").read_text(encoding="utf-8")))
    items = IdMap(json.loads((folder / "items.json").read_text(encoding="utf-8")))
    if (model.n_users_, model.n_items_) != (len(users), len(items)):
        raise ValueError(f"{folder}: the model has {model.n_users_} users x {model.n_items_} items, but "
                         f"users.json/items.json list {len(users)} x {len(items)}")
    seen = pd.read_parquet(folder / "seen.parquet")
    train = Interactions(users, items, seen["user"].to_numpy(), seen["item"].to_numpy(),
                         source=str(folder / "seen.parquet"))
    catalog = None
    if manifest.get("has_catalog"):
        catalog = frame_catalog(pd.read_parquet(folder / "catalog.parquet"), str(folder / "catalog.parquet"))
    features = [FeatureSource(**source) for source in manifest.get("features", [])]
    return Bundle(folder, model, users, items, train, catalog, features, manifest.get("info", {}))


def feature_sources(config, model_config, features_info: dict | None = None) -> list[FeatureSource]:
    """The feature sources of one model: from ``features_info`` (what ``compute_features`` used),
    else from the config (encoder ids computed now)."""
    sources = []
    for name in model_config.features:
        info = (features_info or {}).get(name)
        if info is not None:
            spec = str(info["encoder"])
            encoder_id = None if spec.startswith("dataset:") else info.get("encoder_id")
            sources.append(FeatureSource(name, spec, dict(info.get("options") or {}), encoder_id))
            continue
        spec = config.features[name]
        encoder_id = None
        if not spec.encoder.startswith("dataset:"):
            import prismrec.encoders  # noqa: F401  (registers the built-in encoders)
            from prismrec.encoders.registry import create_encoder

            encoder_id = create_encoder(spec.encoder, **spec.options).id
        sources.append(FeatureSource(name, spec.encoder, dict(spec.options), encoder_id))
    return sources


def bundle_from_fit(folder: str | Path, config, model_config, dataset, split, model,
                    features_info: dict | None = None, *, seed: int | None = None) -> Path:
    """What ``prismrec fit --out RUN`` and ``prismrec compare --save-models`` call: a bundle of one
    fitted model; ``seed`` (recorded in ``info``) is the seed of the split it was fitted on."""
    info = {"config": str(config.source), "model_name": model_config.name}
    if seed is not None:
        info["seed"] = seed
    return write_bundle(folder, model=model, train=split.train, catalog=dataset.catalog,
                        features=feature_sources(config, model_config, features_info), info=info)


def build_bundle_index(folder: str | Path, **hnsw_options) -> Path:
    """Build the HNSW graph of a bundle's item vectors and save it in ``folder/index/`` (atomically), so
    that ``prismrec serve`` reads it instead of building it at start (minutes for 1M items).
    ``hnsw_options`` (``neighbours``, ``ef_construction``) must match the server's (defaults do)."""
    from prismrec.serving.factors import factor_view
    from prismrec.serving.index import HnswIndex

    folder = Path(folder)
    vectors = factor_view(load_bundle(folder).model).item_vectors
    return HnswIndex(vectors, cache_dir=folder / BUNDLE_INDEX_DIR, **hnsw_options).path
