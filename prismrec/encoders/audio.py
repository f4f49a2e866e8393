"""``audio:logmel``: a parameter-free log-mel audio encoder (no pretrained weights).

No pip package ships pretrained audio-embedding weights that load offline with this
project's torch and without torchaudio/torchvision (VGGish, PANNs, OpenL3, CLAP and
YAMNet ports all download their checkpoints at run time), so the audio encoder is a
signal-processing front end:

1. decode to mono float32 (WAV with the standard ``wave`` module, other formats with
   PyAV when it is installed), keeping at most ``max_seconds``;
2. resample to ``sample_rate`` with a polyphase filter (:func:`scipy.signal.resample_poly`);
3. log-mel spectrogram: Hann-windowed STFT (:func:`torch.stft`), power spectrum
   normalised by the window energy, a triangular HTK-mel filterbank computed here, and
   ``log(mel + floor)``;
4. pool over time: per-band mean and standard deviation, plus (``deltas=True``) the
   standard deviation of the frame-to-frame differences: ``[mean | std | delta-std]``.

Its "weights hash" is a hash of this configuration, so the feature store re-encodes
whenever a setting changes.
"""
from __future__ import annotations

import hashlib
import json
import math
import wave
from pathlib import Path

import numpy as np
import torch

from prismrec.encoders.base import Encoder
from prismrec.encoders.registry import register_encoder

FRONT_END_VERSION = "logmel/1"


class AudioDecodeError(ValueError):
    """An audio file that cannot be read; the message names the file."""


def _read_wav(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """PCM WAV (8/16/24/32-bit integer) -> float32 [channels, samples] in [-1, 1)."""
    with wave.open(str(path), "rb") as handle:
        rate, channels, width = handle.getframerate(), handle.getnchannels(), handle.getsampwidth()
        n_frames = handle.getnframes()
        if max_seconds is not None:
            n_frames = min(n_frames, int(math.ceil(max_seconds * rate)))
        raw = handle.readframes(n_frames)
    data = np.frombuffer(raw[: len(raw) - len(raw) % (width * channels)], dtype=np.uint8)
    if width == 1:
        values = data.astype(np.float32) - 128.0
    elif width == 3:  # little-endian 24-bit: sign-extend into int32
        triplets = data.reshape(-1, 3).astype(np.int32)
        values = (triplets[:, 0] | (triplets[:, 1] << 8) | (triplets[:, 2] << 16)).astype(np.int32)
        values = np.where(values >= 1 << 23, values - (1 << 24), values).astype(np.float32)
    elif width in (2, 4):
        values = data.view(f"<i{width}").astype(np.float32)
    else:
        raise AudioDecodeError(f"{path}: unsupported WAV sample width {width} bytes")
    values /= float(1 << (8 * width - 1))
    return values.reshape(-1, channels).T, rate


def _read_with_av(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Any FFmpeg-readable audio (MP3, FLAC, OGG, M4A, float WAV...) via PyAV."""
    import av

    chunks, total = [], 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.codec_context.sample_rate
        converter = av.AudioResampler(format="fltp")  # planar float, same layout and rate
        limit = None if max_seconds is None else int(math.ceil(max_seconds * rate))
        for frame in container.decode(stream):
            for converted in converter.resample(frame):
                chunk = converted.to_ndarray().astype(np.float32)
                chunks.append(chunk)
                total += chunk.shape[1]
            if limit is not None and total >= limit:
                break
    if not chunks:
        raise AudioDecodeError(f"{path}: the audio stream decoded to no samples")
    samples = np.concatenate(chunks, axis=1)
    return (samples if limit is None else samples[:, :limit]), int(rate)


def load_audio(path, *, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32 samples and its sample rate.

    Example:
        >>> samples, rate = load_audio("tone.wav")  # doctest: +SKIP
        >>> samples.dtype, samples.ndim  # doctest: +SKIP
        (dtype('float32'), 1)
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: file not found")
    try:
        samples, rate = _read_wav(path, max_seconds)
    except Exception as wave_error:  # not RIFF/PCM (MP3, FLAC, float WAV...): try FFmpeg
        try:
            samples, rate = _read_with_av(path, max_seconds)
        except ImportError:
            raise AudioDecodeError(f"{path}: not a PCM WAV file ({wave_error}); install PyAV "
                                   "(pip install av) to read other formats") from None
        except AudioDecodeError:
            raise
        except Exception as av_error:
            raise AudioDecodeError(f"{path}: cannot decode audio ({type(av_error).__name__}: {av_error})") from None
    if samples.shape[1] == 0:
        raise AudioDecodeError(f"{path}: the file holds no audio samples")
    return samples.mean(axis=0).astype(np.float32), rate


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from ``orig_rate`` to ``target_rate`` Hz.

    Example:
        >>> resample(np.ones(441, dtype=np.float32), 44100, 16000).shape
        (160,)
    """
    if orig_rate == target_rate:
        return samples.astype(np.float32)
    from scipy.signal import resample_poly

    divisor = math.gcd(int(orig_rate), int(target_rate))
    up, down = int(target_rate) // divisor, int(orig_rate) // divisor
    return resample_poly(samples.astype(np.float64), up, down).astype(np.float32)


def hz_to_mel(hz):
    """HTK mel scale: ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> np.ndarray:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` with unit area (Slaney norm).

    Centres are equally spaced on the HTK mel scale between ``f_min`` and ``f_max``;
    each triangle is evaluated at the FFT bin frequencies.

    Example:
        >>> bank = mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40)
        >>> bank.shape, bool((bank.sum(axis=1) > 0).all())
        ((40, 257), True)
    """
    f_max = sample_rate / 2.0 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - left) / (centre - left)
    falling = (right - bins[None, :]) / (right - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (right - left))
    empty = np.flatnonzero(bank.sum(axis=1) == 0)
    if len(empty):
        raise ValueError(f"mel filters {empty.tolist()} cover no FFT bin; use fewer mels or a larger n_fft")
    return bank.astype(np.float32)


def log_mel_spectrogram(samples: np.ndarray, *, sample_rate: int, filterbank: np.ndarray, n_fft: int,
                        win_length: int, hop_length: int, floor: float = 1e-6) -> np.ndarray:
    """``log(mel power + floor)`` as float32 ``[n_mels, n_frames]`` (frames centred, zero padded).

    The power spectrum is divided by the window energy, so a full-scale sine peaks near
    ``log(win_length / 8)`` whatever the sample rate.

    Example:
        >>> bank = mel_filterbank(sample_rate=16000, n_fft=512, n_mels=40)
        >>> log_mel_spectrogram(np.zeros(16000, np.float32), sample_rate=16000, filterbank=bank,
        ...                     n_fft=512, win_length=400, hop_length=160).shape
        (40, 101)
    """
    signal = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    window = torch.hann_window(win_length, periodic=True)
    spectrum = torch.stft(signal, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                          center=True, pad_mode="constant", return_complex=True)
    power = spectrum.abs().pow(2) / window.pow(2).sum()
    mel = torch.from_numpy(filterbank) @ power
    return torch.log(mel + floor).numpy()


class LogMelAudioEncoder(Encoder):
    """Pooled log-mel statistics of each item's audio file (see the module docstring).

    Example:
        >>> encoder = LogMelAudioEncoder(n_mels=32)
        >>> vectors, errors = encoder.encode_batch(["song.wav", "missing.mp3"])  # doctest: +SKIP
        >>> vectors.shape, errors[1]  # doctest: +SKIP
        ((2, 96), 'missing.mp3: file not found')
    """

    modality = "audio"
    name = "audio:logmel"

    def __init__(self, *, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 512, win_length: int = 400,
                 hop_length: int = 160, f_min: float = 0.0, f_max: float | None = None, deltas: bool = True,
                 max_seconds: float | None = 60.0, floor: float = 1e-6) -> None:
        if win_length > n_fft or hop_length <= 0 or sample_rate <= 0:
            raise ValueError(f"need win_length <= n_fft and positive hop_length and sample_rate; got "
                             f"win_length={win_length}, n_fft={n_fft}, hop_length={hop_length}, "
                             f"sample_rate={sample_rate}")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
        self.sample_rate, self.n_mels, self.n_fft = int(sample_rate), int(n_mels), int(n_fft)
        self.win_length, self.hop_length, self.f_min = int(win_length), int(hop_length), float(f_min)
        self.f_max = float(sample_rate / 2.0 if f_max is None else f_max)
        self.deltas, self.max_seconds, self.floor = bool(deltas), max_seconds, float(floor)
        self.filterbank = mel_filterbank(sample_rate=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels,
                                         f_min=self.f_min, f_max=self.f_max)
        self.dim = self.n_mels * (3 if self.deltas else 2)

    def config(self) -> dict:
        return {"version": FRONT_END_VERSION, "sample_rate": self.sample_rate, "n_mels": self.n_mels,
                "n_fft": self.n_fft, "win_length": self.win_length, "hop_length": self.hop_length,
                "f_min": self.f_min, "f_max": self.f_max, "deltas": self.deltas,
                "max_seconds": self.max_seconds, "floor": self.floor}

    def weights_hash(self) -> str:
        """No weights: a hash of the front end's configuration."""
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()

    def contents(self, catalog) -> list:
        return list(catalog.media_paths("audio"))

    def log_mel(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Log-mel spectrogram ``[n_mels, n_frames]`` of mono samples at any rate."""
        samples = resample(np.asarray(samples, dtype=np.float32), int(sample_rate), self.sample_rate)
        if self.max_seconds is not None:
            samples = samples[: int(math.ceil(self.max_seconds * self.sample_rate))]
        return log_mel_spectrogram(samples, sample_rate=self.sample_rate, filterbank=self.filterbank,
                                   n_fft=self.n_fft, win_length=self.win_length, hop_length=self.hop_length,
                                   floor=self.floor)

    def embed_waveform(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The float32 ``[dim]`` vector of in-memory mono samples.

        Example:
            >>> t = np.arange(16000) / 16000
            >>> LogMelAudioEncoder(n_mels=32).embed_waveform(np.sin(2 * np.pi * 440 * t), 16000).shape
            (96,)
        """
        if len(samples) == 0:
            raise AudioDecodeError("the waveform holds no samples")
        bands = self.log_mel(samples, sample_rate)
        parts = [bands.mean(axis=1), bands.std(axis=1)]
        if self.deltas:
            differences = np.diff(bands, axis=1) if bands.shape[1] > 1 else np.zeros_like(bands)
            parts.append(differences.std(axis=1))
        return np.concatenate(parts).astype(np.float32)

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        vectors = np.zeros((len(contents), self.dim), dtype=np.float32)
        errors: list[str | None] = [None] * len(contents)
        for row, path in enumerate(contents):
            try:
                samples, rate = load_audio(path, max_seconds=self.max_seconds)
                vectors[row] = self.embed_waveform(samples, rate)
            except Exception as error:  # an unreadable file is reported, never raised
                message = str(error)
                errors[row] = message if str(path) in message else f"{path}: {message}"
        return vectors, errors


def _logmel_factory(argument: str | None, **options) -> LogMelAudioEncoder:
    if argument:
        raise ValueError(f"audio:logmel takes no argument, got {argument!r}")
    return LogMelAudioEncoder(**options)


register_encoder("audio:logmel", _logmel_factory, options_from=LogMelAudioEncoder)
