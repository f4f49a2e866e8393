"""Taking in new items: checked image uploads, safe ids, and encoding through the feature store.

An upload is accepted only when it is at most ``max_bytes`` long, starts with the magic
bytes of JPEG, PNG, GIF or WebP, decodes fully with Pillow, and has at most
``max_pixels`` pixels (Pillow's decompression-bomb guard, tightened: a larger image is
refused instead of warned about). It is stored under its sha256, never under a name a
client chose, so no id or filename ever becomes a path.

Example:
    >>> check_item_id("tt0111161")
    'tt0111161'
    >>> check_item_id("../../etc/passwd")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    InvalidInput: ...
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

import numpy as np

from prismrec.data.catalog import ItemCatalog
from prismrec.io import atomic_path

# a letter or digit, then letters, digits and _ . : @ -, where a dot is never followed by a dot; no
# look-ahead, so that pydantic's (Rust) regex engine and the OpenAPI schema accept the same pattern
ID_REGEX = r"^[A-Za-z0-9](?:[A-Za-z0-9_:@-]|\.[A-Za-z0-9_:@-])*\.?$"
ID_MAX_LENGTH = 128
ID_PATTERN = re.compile(ID_REGEX)
MAGIC = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png", b"GIF87a": "gif", b"GIF89a": "gif"}
DEFAULT_MAX_IMAGE_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000


class InvalidInput(ValueError):
    """Client input the server refuses; the message says what was expected."""


def check_item_id(item_id: str, what: str = "item_id") -> str:
    """Accept ids of letters, digits and ``_ . : @ -`` (at most 128, not starting with a symbol)."""
    if not ID_PATTERN.match(item_id or "") or len(item_id) > ID_MAX_LENGTH:
        raise InvalidInput(f"{what} {item_id!r} is not allowed: use 1-128 letters, digits and _ . : @ - "
                           "(starting with a letter or digit, no '..')")
    return item_id


def image_kind(data: bytes) -> str:
    """File extension from the magic bytes; :class:`InvalidInput` for anything else."""
    for magic, kind in MAGIC.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise InvalidInput(f"the upload is not a JPEG, PNG, GIF or WebP image (it starts with {data[:8]!r})")


def check_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Validate an uploaded image (size, magic bytes, full decode, pixel count); returns its extension."""
    from PIL import Image

    if len(data) > max_bytes:
        raise InvalidInput(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise InvalidInput("the image upload is empty")
    kind = image_kind(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise InvalidInput(f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels")
                image.load()
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidInput(f"the image is refused as a decompression bomb ({error})") from None
    except Exception as error:  # noqa: BLE001 - Pillow raises many types for broken files
        raise InvalidInput(f"the image could not be decoded ({type(error).__name__}: {error})") from None
    return kind


def save_image(data: bytes, kind: str, media_dir: Path) -> tuple[str, Path]:
    """Store checked image bytes as ``media_dir/<sha256>.<kind>`` (atomically); returns (sha256, path)."""
    digest = hashlib.sha256(data).hexdigest()
    path = media_dir / f"{digest}.{kind}"
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return digest, path


class ItemEncoders:
    """The bundle's encoders, rebuilt from their specs and checked against the recorded encoder ids."""

    def __init__(self, sources, feature_store) -> None:
        import prismrec.encoders  # noqa: F401  (registers the built-in encoders)
        from prismrec.encoders.registry import create_encoder

        self.sources, self.store, self.encoders = list(sources), feature_store, {}
        self.problem = next((f"feature {s.name!r} came from the data set array {s.encoder!r}, not from an "
                             "encoder, so new items cannot be encoded" for s in self.sources if not s.can_encode),
                            None)
        if self.problem:
            return
        for source in self.sources:
            encoder = create_encoder(source.encoder, **source.options)
            if source.encoder_id and encoder.id != source.encoder_id:
                raise ValueError(f"feature {source.name!r}: the model was fitted on features of encoder "
                                 f"{source.encoder_id}, but {source.encoder!r} is now {encoder.id} (other "
                                 "weights); refit or restore the original weights")
            self.encoders[source.name] = encoder

    def warm_up(self) -> None:
        """Load the encoders' weights now (they load lazily), so the first ``POST /items`` is fast."""
        for encoder in self.encoders.values():
            getattr(encoder, "model", None)

    def encode(self, catalog: ItemCatalog) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """Named feature arrays for ``catalog``'s items, plus, per feature, the items that had no usable content."""
        from prismrec.encoders.store import encode_catalog

        arrays, missing = {}, {}
        for name, encoder in self.encoders.items():
            result = encode_catalog(encoder, catalog, self.store, progress=False)
            arrays[name] = result.features  # zeros where content is missing, as in training
            missing[name] = [str(catalog.item_ids[row]) for row in np.flatnonzero(~result.mask)]
        return arrays, missing
