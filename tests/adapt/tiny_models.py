"""Tiny models and data for the adaptation tests: a 2-layer, 32-wide BERT saved as a
sentence-transformers folder, a catalogue whose texts name one of three colours, and an
``.npy`` "image" tower. The tests import it (a ``conftest`` here would clash with the root one's name)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import Encoder
from prismrec.encoders.registry import available_encoders, register_encoder

WORDS = ["red", "blue", "green", "film", "about", "a", "ship", "war", "love", "city", "night", "day", "song",
         "dog", "cat", "hero", "storm", "river", "old", "new"]


def save_tiny_bert(folder, *, seed: int = 0, layers: int = 2, hidden: int = 32) -> str:
    """A randomly initialised BERT (seeded) with a word-level vocabulary, saved as sentence-transformers does."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    BertTokenizer(vocab=vocab, do_lower_case=True).save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(folder))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16, "do_lower_case": False}))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """The 2-layer Hugging Face CLIP of tests/encoders/test_clip.py (text width 32, projection 16)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "prismrec_test_clip", Path(__file__).resolve().parents[1] / "encoders" / "test_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("tiny-clip")
    module.write_tiny_clip(folder)
    return str(folder)


class ArrayImageTower(Encoder):
    """Image tower: the 3-d one-hot colour stored in an ``.npy`` file, times a fixed matrix."""

    modality, name, dim, seed = "image", "test-adapt-image", 6, 5

    def __init__(self) -> None:
        self.matrix = np.random.default_rng(self.seed).normal(size=(3, self.dim)).astype(np.float32)

    def contents(self, catalog):
        return list(catalog.media_paths("image"))

    def read(self, path) -> np.ndarray:
        return np.load(path)

    def encode_batch(self, contents):
        vectors = np.stack([self.read(path) @ self.matrix for path in contents]).astype(np.float32)
        return vectors, [None] * len(contents)

    def weights_hash(self):
        return hashlib.sha256(self.matrix.tobytes()).hexdigest()


class MeanColourTower(ArrayImageTower):
    """Image tower for real image files: the mean RGB colour, times a fixed matrix."""

    name, dim, seed = "test-adapt-png", 4, 6

    def read(self, path) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"), np.float32).mean((0, 1)) / 255


class WordCountTower(Encoder):
    """A text encoder that is not a transformer: counts of the three colour words."""

    modality, name, dim = "text", "test-adapt-words", 3

    def contents(self, catalog):
        return catalog.compose_text("{description}")

    def encode_batch(self, contents):
        return (np.array([[text.split().count(c) for c in ("red", "blue", "green")] for text in contents],
                         dtype=np.float32), [None] * len(contents))

    def weights_hash(self):
        return "0" * 64


for _name, _cls in (("test-adapt-image", ArrayImageTower), ("test-adapt-words", WordCountTower),
                    ("test-adapt-png", MeanColourTower)):
    if _name not in available_encoders():
        register_encoder(_name, lambda argument, _cls=_cls, **options: _cls(**options))


def make_catalog(folder, n_items: int = 40, seed: int = 0) -> ItemCatalog:
    """Item ``i`` is red, blue or green (``i % 3``); its text names the colour among random words, its
    image file holds the colour one-hot plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    colours = ["red", "blue", "green"]
    records = []
    for row in range(n_items):
        colour = row % 3
        words = [str(w) for w in rng.choice(WORDS[3:], size=5)]
        words.insert(int(rng.integers(0, 5)), colours[colour])
        path = folder / f"{row}.npy"
        np.save(path, np.eye(3, dtype=np.float32)[colour] + 0.05 * rng.normal(size=3).astype(np.float32))
        records.append({"item": f"i{row}", "description": " ".join(words), "image": str(path)})
    return ItemCatalog.from_records(records, text_fields=["description"], media_fields={"image": "image"})


@pytest.fixture(scope="module")
def colour_catalog(tmp_path_factory) -> ItemCatalog:
    return make_catalog(tmp_path_factory.mktemp("colour-images"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny kernels: one thread avoids the oversubscription of a busy machine (35x faster here)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
