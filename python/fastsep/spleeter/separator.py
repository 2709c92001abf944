"""``spleeter.separator.Separator`` over fastsep.Separator and the file engine (no second implementation)."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..audio import CODECS
from ..file_engine import separate_file
from ..outputs import (DEFAULT_FORMAT, MAX_SECONDS, check_format, missing_folders, output_paths, precheck_output,
                       remove_empty)
from ..separator import Separator as FastsepSeparator
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
        with spleeter_errors():
            self._separator = FastsepSeparator(params_descriptor, mwf=bool(MWF))
        self._sample_rate = int(self._separator.config.sample_rate)

    def separate(self, waveform: np.ndarray, audio_descriptor: str | None = "") -> dict:
        """{instrument: float32 (samples, 2)} for a waveform (samples, channels) at the model's sample rate; mono
        is duplicated and channels past the second dropped, as Spleeter does."""
        with spleeter_errors():
            return self._separator.run(waveform, self._sample_rate)

    def separate_to_file(self, audio_descriptor, destination: str, audio_adapter: AudioAdapter | None = None,
                         offset: float = 0, duration: float | None = None, codec: Codec = Codec.WAV,
                         bitrate: str = "128k", filename_format: str = DEFAULT_FORMAT,
                         synchronous: bool = True) -> None:
        """Separate the file `audio_descriptor` into `destination`/`filename_format` ({filename}, {foldername},
        {instrument}, {codec}). duration None (the default) separates to the end of the file, where Spleeter cut
        at 600 s; give it to cut. Every path is checked (inside `destination`, one per stem) before any work."""
        offset = offset or 0.0  # None too, as Spleeter's adapters take it
        _check_span(offset, duration)
        paths = _plan(audio_descriptor, destination, filename_format, self._separator.instruments, codec)
        created = missing_folders(paths.values(), pathlib.Path(destination))
        try:
            if audio_adapter is None or type(audio_adapter) is FastsepAudioAdapter:
                with spleeter_errors():
                    result = separate_file(self._separator, os.fspath(audio_descriptor), paths, offset=offset,
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
        paths = _plan(audio_descriptor, destination, filename_format, list(sources), codec)
        created = missing_folders(paths.values(), pathlib.Path(destination))
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
    if not 0 <= offset <= MAX_SECONDS:  # also refuses nan and inf
        raise SpleeterError(f"offset must be >= 0 and at most {MAX_SECONDS:g} s (got {offset})")
    if duration is not None and not 0 < duration <= MAX_SECONDS:
        raise SpleeterError(f"duration must be > 0 and at most {MAX_SECONDS:g} s, or None for the whole file "
                            f"(got {duration})")


def _plan(audio_descriptor, destination, filename_format: str, instruments, codec) -> dict:
    """{instrument: path}: Spleeter's format fields, each path inside `destination` with the codec's extension; a
    format that maps two stems to one file is refused (SpleeterError), before anything is read or written."""
    name = codec_name(codec)
    with spleeter_errors():
        if name not in CODECS:
            raise SpleeterError(f"unknown codec {name!r}: choose one of {', '.join(CODECS)}")
        check_format(filename_format)
        precheck_output(pathlib.Path(destination))
        return output_paths(os.fsdecode(audio_descriptor), pathlib.Path(destination), filename_format, instruments,
                            name)

