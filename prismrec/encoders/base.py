"""The encoder protocol: item content in, float32 ``[n_items, d]`` plus a missing mask out.

An encoder turns one kind of item content into vectors. It knows three things:

* ``contents(catalog)``: what it reads for each item, as a list of *content* values
  (a string for text, a file path for media, ``None`` when the item has none);
* ``content_hash(content)``: a stable hash of that content (the text, or the file bytes),
  used by the feature store to re-encode only items whose content changed;
* ``encode_batch(contents)``: vectors for a batch of present contents, plus a per-item
  error message (``None`` when the item encoded fine; e.g. ``"corrupt JPEG"`` otherwise).

Its ``id`` names the encoder, its configuration and a hash of its weights, so a cache
keyed by ``id`` never serves features computed by other weights.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prismrec.data.catalog import ItemCatalog


@dataclass
class EncodedItems:
    """Result of encoding a catalog: features, a mask, and what went wrong where."""

    features: np.ndarray  # float32 [n_items, dim]; zeros where mask is False
    mask: np.ndarray  # bool [n_items]; True where the item has usable content
    errors: dict[int, str]  # item row -> message for unreadable/corrupt content
    encoder_id: str

    def __post_init__(self) -> None:
        if self.features.dtype != np.float32:
            self.features = self.features.astype(np.float32)

    @property
    def n_missing(self) -> int:
        return int((~self.mask).sum())


class Encoder(ABC):
    """Base class for all item encoders (see the module docstring)."""

    #: the modality this encoder reads: "text", "image", "audio", "video" or "multimodal"
    modality: str = ""
    #: registry name, e.g. "text:minilm"
    name: str = ""
    #: output dimension
    dim: int = 0

    @abstractmethod
    def contents(self, catalog: ItemCatalog) -> list:
        """Per-item content values (str text or file path), ``None`` where missing."""

    @abstractmethod
    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        """Encode present contents: ``(float32 [len(contents), dim], per-item error or None)``.

        Rows with an error must be zeros; an error never raises.
        """

    @abstractmethod
    def weights_hash(self) -> str:
        """A hex digest of the weights (see :func:`hash_state_dict` / :func:`hash_files`)."""

    def config(self) -> dict:
        """Configuration that changes the output (text template, pooling...); part of the id."""
        return {}

    @property
    def id(self) -> str:
        config = ",".join(f"{k}={v}" for k, v in sorted(self.config().items()))
        config_hash = hashlib.sha256(config.encode()).hexdigest()[:8]
        return f"{self.name}@{self.weights_hash()[:16]}-{config_hash}"

    def content_hash(self, content) -> str:
        """sha256 of the text, or of the file bytes (``"missing-file"`` when unreadable)."""
        if self.modality == "text" or not isinstance(content, (str, Path)) or self.modality == "":
            return hashlib.sha256(str(content).encode("utf-8")).hexdigest()
        path = Path(content)
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return "missing-file:" + hashlib.sha256(str(path).encode()).hexdigest()

    def encode(self, catalog: ItemCatalog, batch_size: int = 32) -> EncodedItems:
        """Encode a whole catalog without caching (the feature store adds caching and resume)."""
        contents = self.contents(catalog)
        features = np.zeros((len(contents), self.dim), dtype=np.float32)
        mask = np.zeros(len(contents), dtype=bool)
        errors: dict[int, str] = {}
        present = [i for i, c in enumerate(contents) if c is not None]
        for start in range(0, len(present), batch_size):
            rows = present[start : start + batch_size]
            vectors, row_errors = self.encode_batch([contents[i] for i in rows])
            for row, vector, error in zip(rows, vectors, row_errors):
                if error is None:
                    features[row], mask[row] = vector, True
                else:
                    errors[row] = error
        return EncodedItems(features, mask, errors, self.id)


def hash_state_dict(state_dict) -> str:
    """sha256 over a torch state dict's names, shapes and bytes (deterministic order)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return digest.hexdigest()


def hash_files(paths) -> str:
    """sha256 over the bytes of weight files (sorted by name), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
