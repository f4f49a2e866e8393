"""Tiny bundles for the serving tests: checkerboard interactions, a two-theme catalogue, tiny models.

Users u0..u19 like only items i0..i14 (space films, blue posters); users u20..u39 only
i15..i29 (romances, red posters). A content model therefore learns "space text and blue
pictures mean block 0", which is what the cold-start tests check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from conftest import make_checkerboard
from prismrec.data.catalog import ItemCatalog
from prismrec.serving.bundle import FeatureSource, write_bundle

SPACE = ["Star Voyage", "Orbit", "Galaxy Patrol", "Rocket Men", "Moon Base Alpha", "Mars Colony", "Astronaut",
         "Comet Hunters", "Nebula", "Space Station Nine", "The Asteroid Belt", "Launch Day", "Saturn Rings",
         "Deep Space Probe", "Starship Crew"]
ROMANCE = ["June Wedding", "Love Letters", "The Proposal", "First Kiss", "Honeymoon in Paris", "Sweethearts",
           "The Bride", "Valentine", "Heartstrings", "Summer Romance", "Lovers in Rome", "A Kiss at Midnight",
           "Wedding Bells", "Falling in Love", "Darling"]
BLUE, RED = (20, 40, 220), (220, 30, 30)


def poster(path: Path, colour, size=(48, 72)) -> Path:
    """A flat-colour poster with a light stripe (so it is not a constant image)."""
    image = Image.new("RGB", size, colour)
    for x in range(size[0]):
        image.putpixel((x, size[1] // 2), (240, 240, 240))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def tiny_train():
    return make_checkerboard(n_users=40, n_items=30, density=0.6, seed=1)


def tiny_catalog(train, image_dir: Path | None = None) -> ItemCatalog:
    records = []
    for row, item in enumerate(train.items.raw_ids):
        block = row >= 15
        record = {"item": item, "title": (ROMANCE if block else SPACE)[row % 15],
                  "genres": "Romance" if block else "Sci-Fi"}
        if image_dir is not None:
            record["image"] = str(poster(image_dir / f"{item}.png", RED if block else BLUE))
        records.append(record)
    media = {"image": "image"} if image_dir is not None else None
    return ItemCatalog.from_records(records, text_fields=["title", "genres"], media_fields=media, source="tiny")


def id_only_bundle(folder: Path, model_name: str = "bpr") -> Path:
    """BPR (or MostPopular) on the checkerboard with a text-only catalogue."""
    from prismrec.models import BPR, MostPopular

    train = tiny_train()
    model = BPR(factors=8, epochs=30, learning_rate=0.05, seed=0) if model_name == "bpr" else MostPopular()
    model.fit(train)
    return write_bundle(folder, model=model, train=train, catalog=tiny_catalog(train))


def content_bundle(folder: Path, feature_dir: Path) -> Path:
    """VBPR over MiniLM title features and EfficientNet poster features (both through a feature store)."""
    import prismrec.encoders  # noqa: F401
    from prismrec.encoders.registry import create_encoder
    from prismrec.encoders.store import FeatureStore, encode_catalog
    from prismrec.models import VBPR

    train = tiny_train()
    catalog = tiny_catalog(train, folder.parent / "posters")
    store = FeatureStore(feature_dir)
    sources = [FeatureSource("title", "text:minilm", {"template": "{title}"}),
               FeatureSource("poster", "image:efficientnet-lite0", {})]
    features = {}
    for source in sources:
        encoder = create_encoder(source.encoder, **source.options)
        source.encoder_id = encoder.id
        features[source.name] = encode_catalog(encoder, catalog, store, progress=False).features
    model = VBPR(feature_names=("title", "poster"), factors=4, visual_factors=4, epochs=25, learning_rate=0.05,
                 seed=0).fit(train, item_features=features)
    return write_bundle(folder, model=model, train=train, catalog=catalog, features=sources)


def block(item_id: str) -> int:
    return int(int(item_id[1:]) >= 15)


def user_block(user_id: str) -> int:
    return int(int(user_id[1:]) >= 20)


_SHARED: dict[str, Path] = {}


def shared_bundle(kind: str, tmp_path_factory) -> Path:
    """One ``"vbpr"`` (:func:`content_bundle`) or ``"bpr"`` (:func:`id_only_bundle`) bundle per test session,
    built on first use (the VBPR one takes ~25 s); tests only read it (servers keep state elsewhere)."""
    if kind not in _SHARED:
        root = tmp_path_factory.mktemp(f"shared-{kind}")
        _SHARED[kind] = content_bundle(root / "run", root / "features") if kind == "vbpr" else \
            id_only_bundle(root / "run")
    return _SHARED[kind]
