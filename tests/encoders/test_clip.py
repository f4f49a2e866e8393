"""CLIP encoders on a tiny random CLIP written to disk like a real checkpoint.

The folder holds what a Hugging Face CLIP checkpoint holds (config.json, model.safetensors,
vocab.json, merges.txt, preprocessor_config.json), so it loads through the same code path
as real weights.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders import create_encoder
from prismrec.encoders.clip import clip_backend

MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def write_tiny_clip(folder, seed: int = 0) -> None:
    """A 2-layer CLIP (text and vision width 32, projection 16) with a byte-level BPE vocabulary."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
        "do_resize": True, "size": {"shortest_edge": 32}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": 32, "width": 32}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": MEAN, "image_std": STD, "do_convert_rgb": True}))
    end = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=end, pad_token_id=end),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    write_tiny_clip(folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-images")
    rng = np.random.default_rng(1)
    paths = []
    for index, size in enumerate([(40, 60), (64, 48)]):
        paths.append(folder / f"{index}.jpg")
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(paths[-1])
    corrupt = folder / "corrupt.jpg"
    corrupt.write_text("not an image")
    return [*paths, corrupt]


def test_views_share_one_space_and_match_the_model(tiny_clip, images):
    from transformers import CLIPModel, CLIPProcessor

    image_encoder = create_encoder(f"clip-image:{tiny_clip}")
    text_encoder = create_encoder(f"clip-text:{tiny_clip}")
    assert image_encoder.backend is text_encoder.backend  # loaded once
    assert image_encoder.dim == text_encoder.dim == 16
    image_vectors, image_errors = image_encoder.encode_batch(images[:2])
    text_vectors, text_errors = text_encoder.encode_batch(["a space opera", "a wedding comedy"])
    assert image_errors == [None, None] and text_errors == [None, None]
    assert image_vectors.shape == text_vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, atol=1e-5)
    # known answer: CLIPModel's own forward pass returns the same normalised projections
    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    inputs = processor(text=["a space opera", "a wedding comedy"], images=[Image.open(p) for p in images[:2]],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        output = model(**inputs)
    np.testing.assert_allclose(image_vectors, output.image_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(text_vectors, output.text_embeds.numpy(), atol=1e-5)
    again, _ = image_encoder.encode_batch(images[:2])
    np.testing.assert_array_equal(again, image_vectors)


def test_fused_view_is_the_normalised_mean_of_available_modalities(tiny_clip, images):
    catalog = ItemCatalog(item_ids=["both", "text", "image", "broken", "none"],
                          text={"title": ["a space opera", "a wedding comedy", None, "a heist", None]},
                          media={"image": [str(images[0]), None, str(images[1]), str(images[2]), None]})
    fused = create_encoder(f"clip:{tiny_clip}").encode(catalog)
    text = create_encoder(f"clip-text:{tiny_clip}").encode(catalog)
    image = create_encoder(f"clip-image:{tiny_clip}").encode(catalog)
    assert fused.mask.tolist() == [True, True, True, True, False]
    assert image.mask.tolist() == [True, False, True, False, False] and list(image.errors) == [3]
    expected = text.features[0] + image.features[0]
    np.testing.assert_allclose(fused.features[0], expected / np.linalg.norm(expected), atol=1e-5)
    np.testing.assert_allclose(fused.features[1], text.features[1], atol=1e-6)
    np.testing.assert_allclose(fused.features[2], image.features[2], atol=1e-6)
    np.testing.assert_allclose(fused.features[3], text.features[3], atol=1e-6)  # corrupt image: text only
    assert not fused.features[4].any() and fused.errors == {}
    encoder = create_encoder(f"clip:{tiny_clip}")
    assert encoder.content_hash(("a", str(images[0]))) != encoder.content_hash(("a", str(images[1])))


def test_weights_hash_changes_with_the_weights(tiny_clip, tmp_path, images):
    other = tmp_path / "tiny-clip"
    write_tiny_clip(other, seed=1)
    first, second = create_encoder(f"clip-image:{tiny_clip}"), create_encoder(f"clip-image:{other}")
    assert first.name == second.name == "clip-image:tiny-clip"
    assert first.weights_hash() != second.weights_hash() and first.id != second.id
    assert first.id.startswith("clip-image:tiny-clip@" + first.weights_hash()[:16])
    assert not np.allclose(first.encode_batch(images[:1])[0], second.encode_batch(images[:1])[0])
    old_hash = second.weights_hash()
    write_tiny_clip(other, seed=2)  # overwritten in place: new hash, and a freshly loaded model
    assert create_encoder(f"clip-image:{other}").weights_hash() != old_hash
    assert clip_backend(str(other)) is not second.backend


def test_missing_weights_fail_with_a_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="'openai/clip-vit-base-patch32' is not a local folder.*allow_download"):
        create_encoder("clip:openai/clip-vit-base-patch32")
    with pytest.raises(FileNotFoundError, match="neither a Hugging Face CLIP"):
        create_encoder(f"clip-text:{tmp_path}")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weight files"):
        create_encoder(f"clip-text:{tmp_path}")
    with pytest.raises(ValueError, match="needs a model folder"):
        create_encoder("clip")


def test_open_clip_folder_needs_open_clip(tmp_path):
    import importlib.util

    if importlib.util.find_spec("open_clip") is not None:
        pytest.skip("open_clip is installed; the missing-package message cannot be shown")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 512}}))
    (tmp_path / "open_clip_model.safetensors").write_bytes(b"")
    with pytest.raises(ImportError, match="open_clip checkpoint.*pip install open_clip_torch"):
        create_encoder(f"clip-image:{tmp_path}")
