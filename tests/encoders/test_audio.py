"""audio:logmel on tones that the tests write themselves (WAV via ``wave``, FLAC via PyAV)."""
from __future__ import annotations

import wave

import numpy as np
import pytest

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.audio import (LogMelAudioEncoder, hz_to_mel, load_audio, mel_filterbank, mel_to_hz,
                                     resample)
from prismrec.encoders.registry import create_encoder


def sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def write_wav(path, samples: np.ndarray, rate: int, *, width: int = 2, channels: int = 1):
    """PCM WAV writer: 8-bit unsigned, 16/24/32-bit signed little-endian."""
    scale = float(1 << (8 * width - 1)) - 1
    ints = np.round(np.clip(samples, -1, 1) * scale).astype(np.int64)
    if channels > 1:
        ints = np.repeat(ints[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = (ints & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(raw)
    return str(path)


@pytest.fixture(scope="module")
def encoder():
    return LogMelAudioEncoder()


def tone_file(tmp_path, freq, rate=16000, **kwargs):
    return write_wav(tmp_path / f"tone_{freq}_{rate}_{len(kwargs)}.wav", sine(freq, rate), rate, **kwargs)


def centre_frequencies(encoder) -> np.ndarray:
    mels = np.linspace(hz_to_mel(encoder.f_min), hz_to_mel(encoder.f_max), encoder.n_mels + 2)
    return mel_to_hz(mels[1:-1])


def test_peak_band_moves_up_with_frequency_and_sits_on_the_tone(tmp_path, encoder):
    freqs = [250, 500, 1000, 2000, 4000]
    vectors, errors = encoder.encode_batch([tone_file(tmp_path, f) for f in freqs])
    assert errors == [None] * len(freqs)
    peaks = vectors[:, : encoder.n_mels].argmax(axis=1)
    assert (np.diff(peaks) > 0).all(), peaks
    centres = centre_frequencies(encoder)
    spacing = np.diff(mel_to_hz(np.linspace(0, hz_to_mel(8000), encoder.n_mels + 2)))
    for freq, peak in zip(freqs, peaks):  # the peak band's centre is within one band of the tone
        assert abs(centres[peak] - freq) <= spacing[peak] + 1e-6, (freq, centres[peak])


def test_identical_files_give_identical_vectors(tmp_path, encoder):
    first = write_wav(tmp_path / "a.wav", sine(440, 16000), 16000)
    second = write_wav(tmp_path / "b.wav", sine(440, 16000), 16000)
    vectors, _ = encoder.encode_batch([first, second])
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 3 * 64)


def test_440_hz_is_closer_to_450_than_to_3000(tmp_path, encoder):
    a440, a450, a3000 = encoder.encode_batch([tone_file(tmp_path, f) for f in (440, 450, 3000)])[0]
    cosine = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert np.linalg.norm(a440 - a450) < np.linalg.norm(a440 - a3000) / 5
    assert cosine(a440, a450) > cosine(a440, a3000)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_sample_rates_match_after_resampling(tmp_path, encoder, rate):
    reference = encoder.encode_batch([tone_file(tmp_path, 440)])[0][0]
    other = encoder.encode_batch([tone_file(tmp_path, 440, rate)])[0][0]
    assert np.linalg.norm(other - reference) / np.linalg.norm(reference) < 0.005


def test_resample_preserves_a_sine():
    out = resample(sine(1000, 48000).astype(np.float32), 48000, 16000)
    assert out.shape == (16000,)
    middle = slice(1000, 15000)  # away from the filter's edge transients
    np.testing.assert_allclose(out[middle], sine(1000, 16000)[middle], atol=2e-3)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_pcm_widths_decode_to_the_same_signal(tmp_path, width):
    reference, _ = load_audio(write_wav(tmp_path / "w2.wav", sine(440, 16000), 16000, width=2))
    samples, rate = load_audio(write_wav(tmp_path / f"w{width}.wav", sine(440, 16000), 16000, width=width))
    assert rate == 16000 and samples.shape == reference.shape
    np.testing.assert_allclose(samples, reference, atol=1.0 / 100 if width == 1 else 1e-4)


def test_stereo_is_mixed_to_mono(tmp_path, encoder):
    mono, stereo = encoder.encode_batch([tone_file(tmp_path, 440), tone_file(tmp_path, 440, channels=2)])[0]
    np.testing.assert_allclose(mono, stereo, atol=1e-6)


def test_flac_via_pyav_matches_wav(tmp_path, encoder):
    av = pytest.importorskip("av")
    path = tmp_path / "tone.flac"
    samples = np.round(sine(440, 16000) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    flac, wav = encoder.encode_batch([str(path), tone_file(tmp_path, 440)])[0]
    np.testing.assert_allclose(flac, wav, atol=1e-4)


def test_silence_gives_the_log_floor(tmp_path, encoder):
    vector = encoder.encode_batch([write_wav(tmp_path / "silence.wav", np.zeros(8000), 16000)])[0][0]
    np.testing.assert_allclose(vector[:64], np.log(encoder.floor), rtol=1e-6)
    np.testing.assert_allclose(vector[64:], 0.0, atol=1e-5)  # no variation over time


def test_max_seconds_keeps_only_the_start(tmp_path):
    encoder = LogMelAudioEncoder(max_seconds=1.0)
    long = write_wav(tmp_path / "long.wav", np.concatenate([sine(440, 16000), sine(3000, 16000, 2.0)]), 16000)
    truncated, short = encoder.encode_batch([long, tone_file(tmp_path, 440)])[0]
    np.testing.assert_allclose(truncated, short, atol=1e-5)


def test_broken_files_become_errors_not_exceptions(tmp_path, encoder):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(40)))
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all")
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0), 16000)
    good = tone_file(tmp_path, 440)
    paths = [str(tmp_path / "missing.wav"), str(garbage), good, str(text), empty]
    vectors, errors = encoder.encode_batch(paths)
    assert errors[2] is None and np.abs(vectors[2]).sum() > 0
    for row in (0, 1, 3, 4):
        assert errors[row] is not None and paths[row] in errors[row]
        np.testing.assert_array_equal(vectors[row], 0.0)
    assert "file not found" in errors[0] and "no audio samples" in errors[4]


def test_encode_catalog_masks_missing_and_broken_items(tmp_path, encoder):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"\x00" * 100)
    catalog = ItemCatalog(item_ids=["a", "b", "c"], media={"audio": [tone_file(tmp_path, 440), None, str(broken)]})
    result = encoder.encode(catalog)
    assert result.mask.tolist() == [True, False, False]
    assert list(result.errors) == [2] and str(broken) in result.errors[2]
    assert result.encoder_id == encoder.id


def test_mel_filterbank_known_values():
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert mel_to_hz(hz_to_mel(1234.5)) == pytest.approx(1234.5)
    bank = mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40)
    bin_width = 8000 / 256
    areas = bank.sum(axis=1) * bin_width
    np.testing.assert_allclose(areas[10:], 1.0, atol=0.02)  # unit-area triangles (wide enough filters)
    with pytest.raises(ValueError, match="cover no FFT bin"):
        mel_filterbank(sample_rate=16000, n_fft=64, n_mels=128)


def test_registry_and_id_follow_the_configuration():
    encoder = create_encoder("audio:logmel", n_mels=32, deltas=False)
    assert isinstance(encoder, LogMelAudioEncoder) and encoder.dim == 64
    assert encoder.id == LogMelAudioEncoder(n_mels=32, deltas=False).id
    assert encoder.id != LogMelAudioEncoder(n_mels=40, deltas=False).id
    assert encoder.id.startswith("audio:logmel@")
