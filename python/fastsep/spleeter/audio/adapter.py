"""``spleeter.audio.adapter.AudioAdapter``: Spleeter's audio I/O interface, with fastsep's decoder and encoder
(PyAV, FFmpeg inside the wheel; no ffmpeg binary) as the default."""

from __future__ import annotations

import importlib
import warnings
from abc import ABC, abstractmethod

import numpy as np

from ... import audio
from .._args import as_path, native_order
from .._errors import SpleeterError, spleeter_errors
from . import codec_name


class AudioAdapter(ABC):
    """Loads and saves audio for a Separator. Subclass it (implement load, and save if files are written) to
    bring your own I/O, as with Spleeter; AudioAdapter.default() is fastsep's."""

    _DEFAULT: AudioAdapter | None = None

    @abstractmethod
    def load(self, audio_descriptor, offset: float | None = None, duration: float | None = None,
             sample_rate: float | None = None, dtype=np.float32) -> tuple[np.ndarray, int]:
        """(waveform (samples, channels), sample_rate) of the audio `audio_descriptor` names."""

    def save(self, path, data: np.ndarray, sample_rate: float, codec=None, bitrate: str | None = None) -> None:
        # Spleeter's base class writes nothing here, silently; a missing save is an error instead.
        raise SpleeterError(f"{type(self).__name__} cannot save audio: it does not implement save()")

    @classmethod
    def default(cls) -> AudioAdapter:
        """The shared fastsep audio adapter."""
        if AudioAdapter._DEFAULT is None:
            AudioAdapter._DEFAULT = FastsepAudioAdapter()
        return AudioAdapter._DEFAULT

    @classmethod
    def get(cls, descriptor: str) -> AudioAdapter:
        """An adapter by class path ("package.module.Class"); the default one for an empty descriptor."""
        if not descriptor:
            return cls.default()
        module_name, _, class_name = descriptor.rpartition(".")
        try:
            adapter_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as e:
            raise SpleeterError(f"cannot load audio adapter {descriptor!r}: {e}") from None
        if not (isinstance(adapter_class, type) and issubclass(adapter_class, AudioAdapter)):
            raise SpleeterError(f"{descriptor} is not an AudioAdapter class")
        return adapter_class()


class FastsepAudioAdapter(AudioAdapter):
    """fastsep.audio behind Spleeter's adapter calls. Unlike Spleeter's ffmpeg adapter, errors are never lost:
    every failed read or write raises SpleeterError, and files are written atomically (never truncated)."""

    def load(self, audio_descriptor, offset: float | None = None, duration: float | None = None,
             sample_rate: float | None = None, dtype=np.float32) -> tuple[np.ndarray, int]:
        """Every channel of the file, from `offset` for `duration` seconds (None: from the start, to the end), at
        `sample_rate` (None: the file's own), as `dtype` (a NumPy dtype or Spleeter's b"float32")."""
        path = as_path(audio_descriptor, "audio_descriptor")
        try:
            dtype = np.dtype(dtype.decode() if isinstance(dtype, bytes) else dtype)
        except (TypeError, ValueError, UnicodeDecodeError):
            raise SpleeterError(f"dtype {dtype!r} is not a NumPy dtype") from None
        rate = None if sample_rate is None else _rate(sample_rate)
        with spleeter_errors(f"cannot load {path}"):
            waveform, rate = audio.load(path, offset=offset or 0.0, duration=duration, sample_rate=rate,
                                        max_channels=None)
            return waveform.astype(dtype, copy=False), rate

    def save(self, path, data: np.ndarray, sample_rate: float, codec=None, bitrate: str | None = None) -> None:
        """Write `data` (samples, channels) to `path`; the codec defaults to the extension's, wav is 16-bit as
        Spleeter's. An existing file is replaced, as Spleeter does. NaN or Inf samples, an empty array and anything
        that is not numeric (samples, channels) are refused (SpleeterError); nothing is written then."""
        target = as_path(path, "path")
        rate = _rate(sample_rate)
        with spleeter_errors(f"cannot save {target}"):
            report = audio.save(target, native_order(data), rate, codec=codec_name(codec) if codec else None,
                                bitrate=bitrate or "128k")
        warn_clipped(report.path, report.clipped, report.peak)


#: Sample rates a file may have (FFmpeg's encoders and libsoxr take these).
MAX_RATE = 768_000


def _rate(sample_rate) -> int:
    """A sample rate argument as a positive int (Spleeter passes floats); SpleeterError otherwise."""
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        raise SpleeterError(f"sample_rate must be a number of Hz, not {sample_rate!r:.40}") from None
    if not (rate == rate and 1 <= rate <= MAX_RATE and rate == int(rate)):
        raise SpleeterError(f"sample_rate must be a whole number of Hz from 1 to {MAX_RATE}, not {sample_rate!r:.40}")
    return int(rate)


def warn_clipped(path, clipped: int, peak: float) -> None:
    """Spleeter clips silently; fastsep says so (a UserWarning) when samples exceeded full scale."""
    if clipped:
        warnings.warn(f"{path}: {clipped} samples clipped to full scale (peak {peak:.3f})", UserWarning, stacklevel=3)
