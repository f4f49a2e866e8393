"""``video:<image encoder spec>``: uniformly sampled frames through an image encoder, pooled.

``create_encoder("video:image:efficientnet-lite0", frames=8, pooling="mean")`` decodes each
item's video with PyAV, takes ``frames`` frames at the centres of equal time segments,
encodes them with the image encoder named after ``video:`` and pools them over time
(``"mean"`` or ``"max"``). ``video`` alone uses ``image:efficientnet-lite0``.

:meth:`VideoEncoder.encode_frames` returns the per-frame features ``[n, frames, dim]`` so a
model can pool them itself with the learnable :class:`AttentionPooling`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prismrec.encoders.base import Encoder
from prismrec.encoders.registry import create_encoder, register_encoder

DEFAULT_FRAME_ENCODER = "image:efficientnet-lite0"
POOLINGS = ("mean", "max")
SAMPLING_VERSION = "uniform-centres/1"


class VideoDecodeError(ValueError):
    """A video file that cannot be read; the message names the file."""


def _open(path: Path):
    try:
        import av
    except ImportError as error:
        raise ImportError("video encoders need PyAV: pip install av") from error
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    try:
        container = av.open(str(path))
    except Exception as error:
        raise VideoDecodeError(f"{path}: cannot open video ({type(error).__name__}: {error})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{path}: no video stream")
    return container


def _timespan(container, stream) -> tuple[float, float] | None:
    """(start, duration) of the video stream in seconds, or ``None`` when unknown."""
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    if stream.duration and base:
        return start, float(stream.duration * base)
    if container.duration:
        return start, container.duration / 1_000_000  # av.time_base is microseconds
    return None


def _frames_at_times(container, stream, targets: np.ndarray, seek_gap: float) -> list:
    """For each sorted target time, the frame on screen then (the last one shown at or before it).

    Decoding runs forward from a seek to a key frame; it seeks again only when the next
    target is more than ``seek_gap`` seconds ahead, so short clips decode once.
    """
    chosen, current, pending, decoder = [], None, None, None
    for target in targets:
        latest = pending if pending is not None else current
        if decoder is None or (latest is not None and latest.time is not None and target - latest.time > seek_gap):
            container.seek(max(0, int(target / float(stream.time_base))), stream=stream, backward=True)
            decoder, current, pending = container.decode(stream), None, None
        while True:
            if pending is None:
                pending = next(decoder, None)
                if pending is None:  # end of stream: keep the last frame
                    break
            if current is not None and pending.time is not None and pending.time > target + 1e-6:
                break
            current, pending = pending, None
        if current is None:
            break
        chosen.append(current)
    return chosen


def _frames_by_index(path: Path, n_frames: int) -> list:
    """Fallback without a known duration: count packets, then decode the evenly spaced indices."""
    with _open(path) as container:
        count = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    indices = ((np.arange(n_frames) + 0.5) * count / n_frames).astype(int).tolist()
    picked = {}
    with _open(path) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index in indices:
                picked[index] = frame.to_image()
            if index >= indices[-1]:
                break
    return [picked[i] for i in indices if i in picked]


def sample_frames(path, n_frames: int = 8, *, seek_gap: float = 2.0) -> list:
    """``n_frames`` RGB PIL images at the centres of equal time segments of the video.

    Frame ``i`` is the one on screen at ``start + (i + 0.5) * duration / n``; a video with
    fewer frames than ``n_frames`` repeats frames, so the count is always ``n_frames``.

    Example:
        >>> frames = sample_frames("trailer.mp4", 8)  # doctest: +SKIP
        >>> len(frames), frames[0].mode              # doctest: +SKIP
        (8, 'RGB')
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        span = _timespan(container, stream)
        if span is not None and span[1] > 0:
            targets = span[0] + (np.arange(n_frames) + 0.5) * span[1] / n_frames
            images = [frame.to_image() for frame in _frames_at_times(container, stream, targets, seek_gap)]
        else:
            images = None
    if images is None:
        images = _frames_by_index(path, n_frames)
    if not images:
        raise VideoDecodeError(f"{path}: the video stream decoded to no frames")
    while len(images) < n_frames:  # a stream that ended early: repeat its last frame
        images.append(images[-1])
    return images


class AttentionPooling(nn.Module):
    """Learnable attention over frames: ``[batch, frames, dim]`` (+ mask) -> ``[batch, dim]``.

    Each frame gets a score ``v . tanh(W x)``; the output is the softmax-weighted sum of
    the frames whose mask is True. ``v`` starts at zero, so an untrained module is exactly
    mean pooling over the valid frames.

    Example:
        >>> pool = AttentionPooling(4)
        >>> pool(torch.ones(2, 8, 4)).shape
        torch.Size([2, 4])
    """

    def __init__(self, dim: int, *, hidden: int = 64) -> None:
        super().__init__()
        self.project = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)
        nn.init.zeros_(self.score.weight)

    def weights(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights ``[batch, frames]`` (zero on masked-out frames, rows sum to 1)."""
        scores = self.score(torch.tanh(self.project(frames))).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        return torch.softmax(scores, dim=-1)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return (self.weights(frames, mask).unsqueeze(-1) * frames).sum(dim=1)


def in_memory_image_encoder(frame_encoder):
    """A callable ``list of PIL images -> [n, dim]`` for ``frame_encoder``, or ``None``.

    Uses the encoder's own ``encode_images`` when it has one, the CLIP backend's for a
    ``clip-image:`` view, and ``preprocess_image`` + ``features_from_pixels`` for
    ``image:efficientnet-lite0`` (the same steps its ``encode_batch`` applies to files).
    """
    if callable(getattr(frame_encoder, "encode_images", None)):
        return frame_encoder.encode_images
    backend = getattr(frame_encoder, "backend", None)
    if callable(getattr(backend, "encode_images", None)):
        return backend.encode_images
    from prismrec.encoders.image import EfficientNetLite0Encoder, preprocess_image

    if isinstance(frame_encoder, EfficientNetLite0Encoder):
        def encode(images: list) -> np.ndarray:
            pixels = torch.stack([preprocess_image(image.convert("RGB"), size=frame_encoder.image_size)
                                  for image in images])
            return frame_encoder.features_from_pixels(pixels).numpy()

        return encode
    return None


class VideoEncoder(Encoder):
    """Pooled image-encoder features of ``frames`` uniformly sampled video frames.

    ``frame_encoder`` is any image :class:`Encoder`. Frames go to it in memory when
    :func:`in_memory_image_encoder` knows how (an ``encode_images(list of PIL images)``
    method, a CLIP view, EfficientNet-Lite0); otherwise they are written as lossless PNG
    files to a temporary folder for its ``encode_batch``.

    Example:
        >>> encoder = create_encoder("video:image:efficientnet-lite0", frames=8)  # doctest: +SKIP
        >>> encoder.encode_batch(["trailer.mp4"])[0].shape                        # doctest: +SKIP
        (1, 1280)
    """

    modality = "video"

    def __init__(self, frame_encoder: Encoder, *, frames: int = 8, pooling: str = "mean",
                 seek_gap: float = 2.0) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r} "
                             "(attention pooling is learned: use AttentionPooling on encode_frames output)")
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.frame_encoder, self.frames, self.pooling, self.seek_gap = frame_encoder, int(frames), pooling, seek_gap
        self.name = f"video:{frame_encoder.name}"

    @property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.frame_encoder.dim)

    def config(self) -> dict:
        return {"frames": self.frames, "pooling": self.pooling, "sampling": SAMPLING_VERSION,
                "frame_encoder": self.frame_encoder.id}

    def weights_hash(self) -> str:
        return self.frame_encoder.weights_hash()

    def contents(self, catalog) -> list:
        return list(catalog.media_paths("video"))

    def encode_images(self, images: list) -> np.ndarray:
        """Frame-encoder features ``float32 [len(images), dim]`` of in-memory PIL images."""
        in_memory = in_memory_image_encoder(self.frame_encoder)
        if in_memory is not None:
            return np.asarray(in_memory(images), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="prismrec-frames-") as folder:
            paths = []
            for index, image in enumerate(images):
                paths.append(str(Path(folder) / f"frame{index:04d}.png"))
                image.save(paths[-1], format="PNG")
            vectors, errors = self.frame_encoder.encode_batch(paths)
        failed = [e for e in errors if e is not None]
        if failed:
            raise VideoDecodeError(f"the frame encoder rejected a frame: {failed[0]}")
        return np.asarray(vectors, dtype=np.float32)

    def encode_frames(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        """Per-frame features ``float32 [len(contents), frames, dim]`` and per-item errors."""
        features = np.zeros((len(contents), self.frames, self.dim), dtype=np.float32)
        errors: list[str | None] = [None] * len(contents)
        for row, path in enumerate(contents):
            try:
                features[row] = self.encode_images(sample_frames(path, self.frames, seek_gap=self.seek_gap))
            except ImportError:
                raise
            except Exception as error:  # an unreadable file is reported, never raised
                message = str(error)
                errors[row] = message if str(path) in message else f"{path}: {message}"
        return features, errors

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        features, errors = self.encode_frames(contents)
        pooled = features.mean(axis=1) if self.pooling == "mean" else features.max(axis=1)
        pooled[[i for i, error in enumerate(errors) if error is not None]] = 0.0
        return pooled.astype(np.float32), errors


def _video_factory(argument: str | None, *, frames: int = 8, pooling: str = "mean", seek_gap: float = 2.0,
                   **frame_encoder_options) -> VideoEncoder:
    """``video:<image spec>``; extra options go to the image encoder."""
    frame_encoder = create_encoder(argument or DEFAULT_FRAME_ENCODER, **frame_encoder_options)
    if getattr(frame_encoder, "modality", "") != "image":
        raise ValueError(f"video:{argument} needs an image encoder, but {argument!r} reads "
                         f"{getattr(frame_encoder, 'modality', '?')!r} content")
    return VideoEncoder(frame_encoder, frames=frames, pooling=pooling, seek_gap=seek_gap)


register_encoder("video", _video_factory)
