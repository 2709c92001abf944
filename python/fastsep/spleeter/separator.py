"""``spleeter.separator.Separator`` over fastsep.Separator and the file engine (no second implementation)."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

import numpy as np

from ..audio import CODECS, MAX_CHANNELS
from ..file_engine import separate_file
from ..outputs import (DEFAULT_FORMAT, MAX_SECONDS, check_format, missing_folders, plan_outputs, precheck_output,
                       remove_empty)
from ..run_plan import resolve_plan
from ..separator import Separator as FastsepSeparator
from ._args import as_path, native_order
from ._errors import SpleeterError, spleeter_errors
from .audio import Codec, codec_name
from .audio.adapter import AudioAdapter, FastsepAudioAdapter, warn_clipped


class Separator:
    """Spleeter's Separator: `params_descriptor` is "spleeter:2stems" (4stems, 5stems, their -16kHz variants), a
    Spleeter JSON config (its model_dir looked up as a path, then under $MODEL_PATH, as Spleeter does) or anything
    fastsep.Separator takes. MWF: Spleeter's multichannel Wiener filter.

    multiprocess (Spleeter's process pool for writing files) and stft_backend (Spleeter 2.0-2.3) are accepted and
    change nothing: files are written before a call returns, and fastsep has one STFT."""

    def __init__(self, params_descriptor: str, MWF: bool = False, multiprocess: bool = True, *,
                 stft_backend=None) -> None:
        if isinstance(params_descriptor, (bytes, os.PathLike)):
            params_descriptor = as_path(params_descriptor, "params_descriptor")
        if not isinstance(params_descriptor, str):
            raise SpleeterError("params_descriptor must be a model name or path, not "
                                f"{type(params_descriptor).__name__}")
        with spleeter_errors("cannot load model"):
            self._separator = FastsepSeparator(resolve_plan(params_descriptor, mwf=bool(MWF)))
        self._sample_rate = int(self._separator.config.sample_rate)

    def separate(self, waveform: np.ndarray, audio_descriptor: str | None = "") -> dict:
        """{instrument: float32 (samples, 2)} for a waveform (samples, channels) at the model's sample rate; mono
        is duplicated and channels past the second dropped, as Spleeter does."""
        with spleeter_errors("cannot separate the waveform"):
            return self._separator.run(native_order(waveform), self._sample_rate)

    def separate_to_file(self, audio_descriptor, destination: str, audio_adapter: AudioAdapter | None = None,
                         offset: float = 0, duration: float | None = None, codec: Codec = Codec.WAV,
                         bitrate: str = "128k", filename_format: str = DEFAULT_FORMAT,
                         synchronous: bool = True) -> None:
        """Separate the file `audio_descriptor` into `destination`/`filename_format` ({filename}, {foldername},
        {instrument}, {codec}). duration None (the default) separates to the end of the file, where Spleeter cut
        at 600 s; give it to cut. Every path is checked (inside `destination`, one per stem, never the input)
        before any work."""
        offset = offset or 0.0  # None too, as Spleeter's adapters take it
        _check_span(offset, duration)
        source = as_path(audio_descriptor, "audio_descriptor")
        paths = _plan(source, destination, filename_format, self._separator.instruments, codec)
        with spleeter_errors(f"cannot separate {source}"):
            created = missing_folders(paths.values(), pathlib.Path(as_path(destination, "destination")))
        try:
            if audio_adapter is None or type(audio_adapter) is FastsepAudioAdapter:
                with spleeter_errors(f"cannot separate {source}"):
                    result = separate_file(self._separator, source, paths, offset=offset,
                                           duration=duration, codec=codec_name(codec), bitrate=bitrate,
                                           sample_rate=self._separator.config.sample_rate,  # as Spleeter writes
                                           overwrite=True)
                for name, path in result.outputs.items():
                    warn_clipped(path, result.clipped[name], result.peaks[name])
            else:  # the caller's own I/O
                waveform, _ = audio_adapter.load(audio_descriptor, offset=offset, duration=duration,
                                                 sample_rate=self._sample_rate)
                self._write(self.separate(waveform, audio_descriptor), paths, codec, audio_adapter, bitrate)
        except BaseException:
            remove_empty(created)
            raise

    def save_to_file(self, sources: dict, audio_descriptor, destination: str, filename_format: str = DEFAULT_FORMAT,
                     codec: Codec = Codec.WAV, audio_adapter: AudioAdapter | None = None, bitrate: str = "128k",
                     synchronous: bool = True) -> None:
        """Write {instrument: (samples, channels)} at the model's sample rate to the formatted paths, through
        `audio_adapter` (default: fastsep's)."""
        if not isinstance(sources, Mapping):
            raise SpleeterError(f"sources must be a dict {{instrument: waveform}}, not {type(sources).__name__}")
        sources = {name: _checked_waveform(name, data) for name, data in sources.items()}
        paths = _plan(as_path(audio_descriptor, "audio_descriptor"), destination, filename_format, list(sources), codec)
        with spleeter_errors("cannot save"):
            created = missing_folders(paths.values(), pathlib.Path(as_path(destination, "destination")))
        try:
            self._write(sources, paths, codec, audio_adapter or AudioAdapter.default(), bitrate)
        except BaseException:
            remove_empty(created)
            raise

    def join(self, timeout: int = 200) -> None:
        """Nothing to wait for: every write finished (or raised) before its call returned."""

    def _write(self, sources: dict, paths: dict, codec, adapter: AudioAdapter, bitrate: str) -> None:
        for name, path in paths.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)  # adapters expect the folder, as Spleeter makes it
            except OSError as e:
                raise SpleeterError(f"cannot create folder {path.parent}: {e.strerror or e}") from None
            adapter.save(str(path), sources[name], self._sample_rate, codec, bitrate)


def _check_span(offset, duration) -> None:
    for name, value in (("offset", offset), ("duration", duration)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
            raise SpleeterError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not 0 <= offset <= MAX_SECONDS:  # also refuses nan and inf
        raise SpleeterError(f"offset must be >= 0 and at most {MAX_SECONDS:g} s (got {offset})")
    if duration is not None and not 0 < duration <= MAX_SECONDS:
        raise SpleeterError(f"duration must be > 0 and at most {MAX_SECONDS:g} s, or None for the whole file "
                            f"(got {duration})")


def _checked_waveform(name, data) -> np.ndarray:
    """One source of save_to_file as a numeric (samples, channels) array; SpleeterError (naming the instrument) for
    what no audio file can hold: text, empty arrays, a shape that is not 1-D or 2-D, too many channels, NaN or Inf."""
    try:
        x = np.asarray(data)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise SpleeterError(f"source {name!r} is not an array of samples ({e})") from None
    if x.dtype.kind not in "fiu":
        raise SpleeterError(f"source {name!r} must hold float or integer samples, not {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[0] == 0 or (x.ndim == 2 and x.shape[1] == 0):
        raise SpleeterError(f"source {name!r} must be a non-empty (samples, channels) array, got shape {x.shape}")
    if x.ndim == 2 and x.shape[1] > MAX_CHANNELS:
        hint = ": pass x.T, (samples, channels)" if x.shape[0] <= MAX_CHANNELS else ""
        raise SpleeterError(f"source {name!r} of shape {x.shape} has more than {MAX_CHANNELS} channels{hint}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise SpleeterError(f"source {name!r} holds NaN or Inf samples; nothing written")
    return native_order(x)


def _plan(source: str, destination, filename_format: str, instruments, codec) -> dict:
    """{instrument: path}: Spleeter's format fields, each path inside `destination` with the codec's extension, no
    two stems on one file and none on the input itself (outputs.plan_outputs, as `fastsep separate` plans), all
    refused (SpleeterError) before anything is read or written."""
    name = codec_name(codec)
    if not isinstance(filename_format, str):
        raise SpleeterError(f"filename_format must be a string, not {type(filename_format).__name__}")
    folder = pathlib.Path(as_path(destination, "destination"))
    with spleeter_errors("cannot plan the output files"):
        if name not in CODECS:
            raise SpleeterError(f"unknown codec {name!r}: choose one of {', '.join(CODECS)}")
        check_format(filename_format)
        precheck_output(folder)
        return plan_outputs([source], folder, filename_format, instruments, name)[0]
