"""CLIP encoders: images and text in one shared, L2-normalised embedding space.

Three views of one loaded model (loaded once per folder and shared):

* ``clip-image:<dir>``: each item's image, through the vision tower and projection;
* ``clip-text:<dir>``: each item's text (a template over the catalog, as in ``text:``);
* ``clip:<dir>``: one vector per item, the re-normalised mean of the available modalities
  (masked when the item has neither text nor a readable image).

``<dir>`` is a local folder in one of two formats:

* Hugging Face: ``CLIPModel.save_pretrained`` + ``CLIPProcessor.save_pretrained``
  (``config.json``, ``model.safetensors``, tokenizer and image-processor files);
* open_clip: ``open_clip_config.json`` + ``open_clip_model.safetensors`` (or ``.bin``). This
  needs the ``open_clip_torch`` package, which itself requires torchvision, so it is not a
  PrismRec dependency: install it yourself to use such folders.

A hub name (``openai/clip-vit-base-patch32``) is fetched only with ``allow_download=True``;
otherwise a name that is not a folder fails with a message saying what to provide.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import Encoder, hash_state_dict
from prismrec.encoders.image import describe_image_error, read_image
from prismrec.encoders.registry import register_encoder
from prismrec.encoders.text import cached_hash_files, default_template, offline_hub, weight_files

_BACKENDS: dict[tuple, "ClipBackend"] = {}


def _missing_weights_message(source: str) -> str:
    return (f"CLIP weights not found: {source!r} is not a local folder. Provide a folder saved with "
            "CLIPModel.save_pretrained(dir) and CLIPProcessor.save_pretrained(dir) (config.json, model.safetensors, "
            "tokenizer and preprocessor files), or an open_clip folder (open_clip_config.json + "
            "open_clip_model.safetensors); to fetch a Hugging Face hub model such as "
            "'openai/clip-vit-base-patch32' instead, pass allow_download=True")


class ClipBackend:
    """One loaded CLIP model (Hugging Face or open_clip) with unit-norm image and text embedding."""

    def __init__(self, source: str, *, allow_download: bool = False, device: str = "cpu") -> None:
        self.source, self.allow_download, self.device = str(source), allow_download, device
        folder = Path(source)
        self.folder = folder.resolve() if folder.is_dir() else None
        if self.folder is None and not allow_download:
            raise FileNotFoundError(_missing_weights_message(self.source))
        if self.folder is not None and (self.folder / "open_clip_config.json").is_file():
            self.kind = "open_clip"
        elif self.folder is None or (self.folder / "config.json").is_file():
            self.kind = "hf"
        else:
            raise FileNotFoundError(f"{self.folder} holds neither a Hugging Face CLIP (config.json) nor an "
                                    f"open_clip model (open_clip_config.json). {_missing_weights_message(self.source)}")
        if self.kind == "open_clip" and importlib.util.find_spec("open_clip") is None:
            raise ImportError(
                f"{self.folder} is an open_clip checkpoint; loading it needs the 'open_clip_torch' package "
                "(pip install open_clip_torch; it requires torchvision, which PrismRec does not install). "
                "Alternatively use a Hugging Face CLIP folder (CLIPModel.save_pretrained).")
        if self.folder is not None and not weight_files(self.folder):
            raise FileNotFoundError(f"no weight files (*.safetensors, *.bin, *.pt) in {self.folder}")
        self._loaded = None
        self._hash: str | None = None

    @property
    def dim(self) -> int:
        """Shared embedding size, read from the config file (no model load for local folders)."""
        if self.folder is None:
            return self._load_hf()[0].config.projection_dim
        if self.kind == "open_clip":
            return int(json.loads((self.folder / "open_clip_config.json").read_text())["model_cfg"]["embed_dim"])
        return int(json.loads((self.folder / "config.json").read_text()).get("projection_dim", 512))

    def weights_hash(self) -> str:
        if self.folder is not None:
            return cached_hash_files(weight_files(self.folder))
        if self._hash is None:
            self._hash = hash_state_dict(self._load_hf()[0].state_dict())
        return self._hash

    def _load_hf(self):
        if self._loaded is None:
            from transformers import CLIPModel, CLIPProcessor

            local = {} if self.folder is None else {"local_files_only": True}
            with offline_hub() if self.folder is not None else nullcontext():
                path = str(self.folder or self.source)
                model = CLIPModel.from_pretrained(path, **local).to(self.device).eval()
                self._loaded = (model, CLIPProcessor.from_pretrained(path, **local))
        return self._loaded

    def _load_open_clip(self):
        if self._loaded is None:
            import open_clip
            spec = f"local-dir:{self.folder}"
            model, preprocess = open_clip.create_model_from_pretrained(spec, device=self.device)
            self._loaded = (model.eval(), preprocess, open_clip.get_tokenizer(spec))
        return self._loaded

    def encode_images(self, images: list) -> np.ndarray:
        """PIL images -> float32 ``[n, dim]`` unit vectors."""
        with torch.inference_mode():
            if self.kind == "open_clip":
                model, preprocess, _ = self._load_open_clip()
                embedded = model.encode_image(torch.stack([preprocess(image) for image in images]).to(self.device))
            else:
                model, processor = self._load_hf()
                pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
                embedded = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
            return torch.nn.functional.normalize(embedded.float(), dim=-1).cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> float32 ``[n, dim]`` unit vectors (truncated to the model's context length)."""
        with torch.inference_mode():
            if self.kind == "open_clip":
                model, _, tokenizer = self._load_open_clip()
                embedded = model.encode_text(tokenizer(texts).to(self.device))
            else:
                model, processor = self._load_hf()
                tokens = processor(text=texts, return_tensors="pt", padding=True, truncation=True,
                                   max_length=model.config.text_config.max_position_embeddings)
                output = model.text_model(input_ids=tokens["input_ids"].to(self.device),
                                          attention_mask=tokens["attention_mask"].to(self.device))
                embedded = model.text_projection(output.pooler_output)
            return torch.nn.functional.normalize(embedded.float(), dim=-1).cpu().numpy()


def clip_backend(source: str, *, allow_download: bool = False, device: str = "cpu") -> ClipBackend:
    """The shared backend for ``source``; reloaded when the weight files change on disk."""
    folder = Path(source)
    signature = ()
    if folder.is_dir():
        signature = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in weight_files(folder))
    key = (str(folder.resolve()) if folder.is_dir() else source, allow_download, device, signature)
    if key not in _BACKENDS:
        _BACKENDS[key] = ClipBackend(source, allow_download=allow_download, device=device)
    return _BACKENDS[key]


class _ClipView(Encoder):
    """Shared plumbing of the three CLIP views (see the module docstring)."""

    view = ""

    def __init__(self, source: str, *, allow_download: bool = False, template: str | None = None,
                 batch_size: int = 32, device: str = "cpu") -> None:
        self.backend = clip_backend(source, allow_download=allow_download, device=device)
        label = self.backend.folder.name if self.backend.folder is not None else self.backend.source
        self.name = f"{self.view}:{label}"
        self.template = template
        self.batch_size = batch_size

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.backend.dim

    def weights_hash(self) -> str:
        return self.backend.weights_hash()

    def config(self) -> dict:
        return {"format": self.backend.kind, "template": self.template or "auto", "normalize": True}

    def _texts(self, catalog: ItemCatalog) -> list:
        return catalog.compose_text(self.template or default_template(catalog))

    def _embed_images(self, paths: list) -> tuple[np.ndarray, list[str | None]]:
        vectors = np.zeros((len(paths), self.dim), dtype=np.float32)
        errors: list[str | None] = [None] * len(paths)
        images, rows = [], []
        for row, path in enumerate(paths):
            try:
                images.append(read_image(path))
                rows.append(row)
            except Exception as error:  # an unreadable file is reported, never raised
                errors[row] = describe_image_error(path, error)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            vectors[chunk] = self.backend.encode_images(images[start : start + self.batch_size])
        return vectors, errors

    def _embed_texts(self, texts: list) -> tuple[np.ndarray, list[str | None]]:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        errors = [None if isinstance(t, str) and t.strip() else f"expected non-empty text, got {t!r}" for t in texts]
        rows = [row for row, error in enumerate(errors) if error is None]
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            vectors[chunk] = self.backend.encode_texts([texts[row] for row in chunk])
        return vectors, errors


class ClipImageEncoder(_ClipView):
    """``clip-image:<dir>``: unit-norm CLIP embeddings of item images."""

    modality, view = "image", "clip-image"

    def contents(self, catalog: ItemCatalog) -> list:
        return list(catalog.media_paths("image"))

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        return self._embed_images(contents)


class ClipTextEncoder(_ClipView):
    """``clip-text:<dir>``: unit-norm CLIP embeddings of item text (template as in ``text:``)."""

    modality, view = "text", "clip-text"

    def contents(self, catalog: ItemCatalog) -> list:
        return self._texts(catalog)

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        return self._embed_texts(contents)


class ClipEncoder(_ClipView):
    """``clip:<dir>``: per item, the re-normalised mean of its CLIP text and image embeddings.

    Content is a ``(text, image_path)`` pair; an unreadable image leaves the text alone, and
    an item is an error (masked) only when neither is usable.

    Example:
        >>> encoder = create_encoder("clip:/models/clip-vit-base-patch32")   # doctest: +SKIP
        >>> encoder.encode(catalog).features.shape                          # doctest: +SKIP
        (1682, 512)
    """

    modality, view = "multimodal", "clip"

    def config(self) -> dict:
        return {**super().config(), "fusion": "mean"}

    def contents(self, catalog: ItemCatalog) -> list:
        texts = self._texts(catalog) if catalog.text else [None] * len(catalog)
        paths = catalog.media["image"] if "image" in catalog.media else [None] * len(catalog)
        return [None if text is None and path is None else (text, path) for text, path in zip(texts, paths)]

    def content_hash(self, content) -> str:
        text, path = content
        image_hash = "no-image" if path is None else super().content_hash(path)
        return hashlib.sha256(f"{text!r}\0{image_hash}".encode()).hexdigest()

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        texts = [text for text, _ in contents]
        paths = [path for _, path in contents]
        image_rows = [row for row, path in enumerate(paths) if path is not None]
        text_rows = [row for row, text in enumerate(texts) if text is not None]
        image_vectors, image_errors = self._embed_images([paths[row] for row in image_rows])
        text_vectors, text_errors = self._embed_texts([texts[row] for row in text_rows])
        total = np.zeros((len(contents), self.dim), dtype=np.float32)
        count = np.zeros(len(contents), dtype=np.float32)
        problems: list[list[str]] = [[] for _ in contents]
        for rows, vectors, errors in [(image_rows, image_vectors, image_errors), (text_rows, text_vectors, text_errors)]:
            for row, vector, error in zip(rows, vectors, errors):
                if error is None:
                    total[row] += vector
                    count[row] += 1
                else:
                    problems[row].append(error)
        norms = np.linalg.norm(total, axis=1, keepdims=True)
        fused = np.divide(total, norms, out=np.zeros_like(total), where=norms > 0)
        errors = [None if count[row] else "; ".join(problems[row]) or "no text and no image"
                  for row in range(len(contents))]
        return fused, errors


def _factory(cls):
    def build(argument: str | None = None, **options):
        if not argument:
            raise ValueError(f"{cls.view} needs a model folder, e.g. {cls.view}:/models/clip-vit-base-patch32")
        return cls(argument, **options)

    return build


register_encoder("clip", _factory(ClipEncoder), options_from=ClipEncoder)
register_encoder("clip-image", _factory(ClipImageEncoder), options_from=ClipImageEncoder)
register_encoder("clip-text", _factory(ClipTextEncoder), options_from=ClipTextEncoder)
