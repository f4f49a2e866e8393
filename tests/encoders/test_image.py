"""EfficientNet-Lite0 image encoder on its packaged ImageNet weights (loaded once)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders import create_encoder
from prismrec.encoders.image import IMAGENET_MEAN, IMAGENET_STD, preprocess_image
from conftest import shared_data


@pytest.fixture(scope="module")
def encoder():
    return create_encoder("image:efficientnet-lite0")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {}
    for name, size in [("a", (92, 138)), ("b", (300, 200))]:
        paths[name] = folder / f"{name}.jpg"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(paths[name], quality=95)
    paths["a_copy"] = folder / "a_copy.jpg"
    paths["a_copy"].write_bytes(paths["a"].read_bytes())
    paths["gray"] = folder / "gray.png"
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L").save(paths["gray"])
    paths["truncated"] = folder / "truncated.jpg"
    paths["truncated"].write_bytes(paths["b"].read_bytes()[:600])
    paths["text"] = folder / "notes.jpg"
    paths["text"].write_text("this is not a JPEG")
    paths["missing"] = folder / "missing.jpg"
    return paths


def test_preprocessing_crops_the_centre_and_normalises():
    # left half black, right half white, 100x50: the short side becomes 224 and the width 448,
    # so the 224-wide centre crop is half black, half white
    pixels = np.zeros((50, 100, 3), dtype=np.uint8)
    pixels[:, 50:] = 255
    tensor = preprocess_image(Image.fromarray(pixels))
    assert tuple(tensor.shape) == (3, 224, 224) and tensor.dtype == torch.float32
    black = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    white = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(tensor[:, 100, 0].numpy(), black, atol=1e-5)
    np.testing.assert_allclose(tensor[:, 100, 223].numpy(), white, atol=1e-5)


def test_shape_determinism_and_identical_images(encoder, images):
    paths = [images["a"], images["b"], images["a_copy"], images["gray"]]
    vectors, errors = encoder.encode_batch(paths)
    assert errors == [None] * 4
    assert vectors.shape == (4, 1280) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    assert (vectors >= 0).all() and (vectors <= 6).all()  # ReLU6 activations, averaged
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)  # same bytes -> same vector
    assert not np.allclose(vectors[0], vectors[1])
    again, _ = encoder.encode_batch([images["a"]])
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-5)


def test_bad_files_give_errors_not_exceptions(encoder, images):
    paths = [images["truncated"], images["a"], images["text"], images["missing"]]
    vectors, errors = encoder.encode_batch(paths)
    assert errors[1] is None and vectors[1].any()
    assert "truncated.jpg" in errors[0] and "unreadable image" in errors[0]
    assert "notes.jpg" in errors[2] and "unreadable image" in errors[2]
    assert "missing.jpg" in errors[3] and "not found" in errors[3]
    assert not vectors[[0, 2, 3]].any()


def test_encode_catalog_masks_missing_and_corrupt(encoder, images):
    catalog = ItemCatalog(item_ids=["1", "2", "3"], media={"image": [str(images["a"]), None, str(images["text"])]})
    encoded = encoder.encode(catalog)
    assert encoded.mask.tolist() == [True, False, False]
    assert list(encoded.errors) == [2]
    assert encoded.encoder_id == encoder.id and encoder.id.startswith("image:efficientnet-lite0@")
    with pytest.raises(KeyError, match="no 'image' files"):
        encoder.contents(ItemCatalog(item_ids=["1"], text={"title": ["x"]}))


def test_real_posters_look_like_posters_to_the_classifier(encoder):
    folder = shared_data("movielens-100k-mm", "posters")
    paths = [folder / f"{movie}.jpg" for movie in range(1, 17)]
    vectors, errors = encoder.encode_batch(paths)
    assert errors == [None] * 16 and vectors.shape == (16, 1280) and np.isfinite(vectors).all()
    with torch.no_grad():
        top5 = encoder.model._fc(torch.from_numpy(vectors)).topk(5, dim=1).indices.tolist()
    # ImageNet 916 "web site", 917 "comic book", 921 "book jacket" are what a poster resembles;
    # by chance any of 3 classes lands in a top 5 of 1000 for ~1.5% of images, here for >= 25%
    assert sum(bool({916, 917, 921} & set(labels)) for labels in top5) >= 4, top5
