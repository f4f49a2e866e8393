"""MiniLM text encoder on its packaged weights (loaded once for the module)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders import create_encoder
from prismrec.encoders.text import default_template, minilm_path

RECORDS = [
    {"item": "space", "title": "Star Voyage", "plot": "Astronauts pilot a starship to a distant galaxy."},
    {"item": "space2", "title": "Orbit", "plot": "A crew of astronauts explores outer space in a rocket."},
    {"item": "romance", "title": "June Wedding", "plot": "Two lovers plan a wedding and fall in love again."},
    {"item": "empty", "title": "", "plot": None},
]


@pytest.fixture(scope="module")
def catalog():
    return ItemCatalog.from_records(RECORDS, text_fields=["title", "plot"])


@pytest.fixture(scope="module")
def minilm():
    return create_encoder("text:minilm")


@pytest.fixture(scope="module")
def encoded(minilm, catalog):
    return minilm.encode(catalog)


def test_shapes_mask_and_unit_norm(encoded, minilm):
    assert minilm.dim == 384
    assert encoded.features.shape == (4, 384) and encoded.features.dtype == np.float32
    assert encoded.mask.tolist() == [True, True, True, False]
    np.testing.assert_allclose(np.linalg.norm(encoded.features[:3], axis=1), 1.0, atol=1e-5)
    assert not encoded.features[3].any()  # an item with no text stays zeros
    assert encoded.errors == {}


def test_similar_plots_are_closer_than_unrelated_ones(encoded):
    space, space2, romance = encoded.features[:3]
    assert space @ space2 > space @ romance + 0.2
    assert space @ space2 > space2 @ romance + 0.2


def test_deterministic_and_batch_independent(minilm, catalog, encoded):
    again = minilm.encode(catalog, batch_size=1)
    np.testing.assert_allclose(again.features, encoded.features, atol=1e-5)


def test_template_composes_fields_and_changes_the_id(minilm, catalog):
    assert default_template(catalog) == "{title}. {plot}"
    assert minilm.contents(catalog)[0] == "Star Voyage. Astronauts pilot a starship to a distant galaxy."
    title_only = create_encoder("text:minilm", template="{title}")
    assert title_only.contents(catalog) == ["Star Voyage", "Orbit", "June Wedding", None]
    assert title_only.id != minilm.id
    assert title_only.weights_hash() == minilm.weights_hash()
    with pytest.raises(KeyError, match="no text field 'genres'"):
        create_encoder("text:minilm", template="{genres}").contents(catalog)


def test_id_names_weights_and_hash_is_cached(minilm):
    assert minilm.id.startswith("text:minilm@" + minilm.weights_hash()[:16])
    start = time.perf_counter()
    minilm.weights_hash()
    assert time.perf_counter() - start < 0.05


def test_bad_text_is_reported_not_raised(minilm):
    vectors, errors = minilm.encode_batch(["a real sentence", "  ", None])
    assert errors[0] is None and "non-empty text" in errors[1] and "None" in errors[2]
    assert vectors.shape == (3, 384) and not vectors[1:].any()


def test_local_folder_spec_uses_the_same_loader(minilm):
    folder = create_encoder(f"text:{minilm_path()}")
    assert folder.name == "text:model" and folder.weights_hash() == minilm.weights_hash()
    vectors, _ = folder.encode_batch(["a film about space"])
    reference, _ = minilm.encode_batch(["a film about space"])
    np.testing.assert_allclose(vectors, reference, atol=1e-6)


def test_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local folder.*nothing is downloaded"):
        create_encoder("text:sentence-transformers/all-mpnet-base-v2")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weight files"):
        create_encoder(f"text:{tmp_path}")
