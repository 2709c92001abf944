"""Files to stems: decode one input, separate it, encode each stem into its own file (docs/architecture.md).

`separate_file` is the one way a file becomes stems, for the CLI, the Spleeter-compatible API and the catalogue
workers: each stem goes to a hidden temporary file renamed into place when complete, so an interrupted or failed
run never leaves a truncated stem under a final name.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Callable, Mapping, Optional

from . import audio


@dataclasses.dataclass
class FileResult:
    """What separate_file did for one input."""

    input: str
    outputs: dict[str, Path]  # stem -> file written
    seconds: float  # audio seconds separated
    sample_rate: int  # of the stems written
    clipped: dict[str, int]  # stem -> samples clipped to the integer format's full scale (0 when none)
    peaks: dict[str, float]  # stem -> peak magnitude before clipping


def separate_file(separator, path: str | os.PathLike, outputs: Mapping[str, str | os.PathLike], *,
                  offset: float = 0.0, duration: Optional[float] = None, codec: Optional[str] = None,
                  bitrate: str = "128k", pcm: str = "s16", sample_rate: Optional[int] = None,
                  overwrite: bool = False, cancel: Optional[threading.Event] = None,
                  on_warning: Optional[Callable[[str], None]] = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> FileResult:
    """Separate the audio file `path` with `separator` and write the stems named in `outputs` ({stem: path}; stems
    not named are not written).

    offset / duration (seconds) select a part of the input. codec defaults to each output's extension; bitrate
    applies to lossy codecs, pcm ("s16", "s24", "f32") to wav and flac. sample_rate is the stems' rate (default: the
    model's). An existing output is kept (OutputExistsError) unless `overwrite`. `cancel` (an Event) stops between
    steps and leaves no file behind. Decoder warnings (a damaged or truncated input) go to `on_warning`.
    """
    unknown = set(outputs) - set(separator.instruments)
    if unknown:
        raise audio.OutputError(f"the model has no stem {sorted(unknown)[0]!r} (its stems: "
                                f"{', '.join(separator.instruments)})")
    rate = int(sample_rate or separator.config.sample_rate)
    x, sr = audio.load(path, offset=offset, duration=duration, sample_rate=rate, on_warning=on_warning)
    seconds = x.shape[0] / sr
    stems = separator.run(x, sr, progress=progress)
    del x
    written, clipped, peaks = {}, {}, {}
    for name, target in outputs.items():
        report = audio.save(target, stems[name], sr, codec=codec, bitrate=bitrate, pcm=pcm, overwrite=overwrite,
                            cancel=cancel)
        written[name] = Path(report.path)
        clipped[name] = report.clipped
        peaks[name] = report.peak
    return FileResult(str(path), written, seconds, sr, clipped, peaks)
