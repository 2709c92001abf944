"""Audio decoding, resampling and encoding through PyAV (FFmpeg's libraries; no ffmpeg binary needed).

Spleeter (SPLEETER.md section 7) pipes the ``ffmpeg`` command line: decode with ``-ar 44100`` (libswresample with
its default filter), trim with output-side ``-ss``/``-t`` (decode from the start and drop), keep the native channel
layout (which the separator cuts to the first two channels; :func:`load` keeps only those as it decodes).
:func:`load` does the same through PyAV's ``AudioResampler`` (the same libswresample), so decoded input
matches what Spleeter feeds its model.  :func:`save` writes wav (16/24-bit PCM or float), flac, mp3, ogg (Vorbis),
opus, m4a (AAC) and wma, always through a temporary file in the destination folder that is renamed into place.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import tempfile
import threading
import time
import warnings
from typing import Callable

import numpy as np

from .errors import FastsepError, InputError, MissingDependencyError

#: Output codecs: name -> (container format, encoder, extension).
CODECS = {
    "wav": ("wav", None, "wav"),
    "flac": ("flac", "flac", "flac"),
    "mp3": ("mp3", "libmp3lame", "mp3"),
    "ogg": ("ogg", "vorbis", "ogg"),
    "opus": ("ogg", "libopus", "opus"),
    "m4a": ("ipod", "aac", "m4a"),
    "wma": ("asf", "wmav2", "wma"),
}
#: PCM sample formats for wav (and flac, which stores 16 or 24 bits; "f32" flac is stored as 24-bit).
PCM_FORMATS = ("s16", "s24", "f32")

# Decoding from the start and dropping samples is exact (what ffmpeg's output-side -ss does); beyond this offset a
# container seek to a little before the offset is used instead, and timestamps place the cut.
_SEEK_THRESHOLD_S = 60.0
_SEEK_MARGIN_S = 5.0


class OutputError(FastsepError):
    """An output file or folder that cannot be written."""


class OutputExistsError(OutputError):
    """An output that already exists (and --overwrite was not given)."""


def _av():
    try:
        import av
    except ModuleNotFoundError:
        raise MissingDependencyError("av", "audio", "Audio decoding and encoding") from None
    except ImportError as e:  # installed but not loadable (a broken install, or no memory left to map it)
        raise FastsepError(f"PyAV is installed but cannot be loaded: {e}") from None
    return av


@dataclasses.dataclass
class AudioInfo:
    """What :func:`probe` finds about a file's audio."""

    path: str
    streams: int  # number of audio streams
    sample_rate: int  # of the chosen stream
    channels: int
    duration: float | None  # seconds, from the container (None when unknown)
    codec: str


def _open_input(path):
    av = _av()
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"{p}: no such file")
    if os.path.isdir(p):
        raise InputError(f"{p}: is a directory, not an audio file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: not readable (permission denied)")
    if os.path.getsize(p) == 0:
        raise InputError(f"{p}: empty file (0 bytes)")
    try:
        return av.open(p, "r")
    except av.FFmpegError as e:
        raise InputError(f"{p}: not a readable audio or video file ({_ffmsg(e)})") from None
    except OSError as e:
        raise InputError(f"{p}: cannot open ({e.strerror or e})") from None


def _ffmsg(e) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).split(":")[0].strip() if msg else type(e).__name__


def _audio_stream(container, path, stream: int):
    audio = list(container.streams.audio)
    if not audio:
        raise InputError(f"{path}: no audio stream")
    if not 0 <= stream < len(audio):
        raise InputError(f"{path}: has {len(audio)} audio stream(s); stream {stream} does not exist")
    return audio[stream]


def probe(path, stream: int = 0) -> AudioInfo:
    """Audio stream count, rate, channels and duration of ``path`` (raises InputError on anything unreadable)."""
    with _open_input(path) as c:
        s = _audio_stream(c, path, stream)
        duration = None
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None:
            duration = c.duration / 1_000_000
        cc = s.codec_context
        return AudioInfo(os.fspath(path), len(c.streams.audio), int(cc.sample_rate or 0), int(cc.channels or 0),
                         duration, cc.name)


def _frame_array(frame, max_channels: int | None = None) -> np.ndarray:
    """An AudioFrame as float32 (n, channels), keeping the first ``max_channels`` channels (None: all)."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        arr = arr.T
    else:
        arr = arr.reshape(-1, channels)
    arr = arr[:, :max_channels]
    if arr.dtype != np.float32:
        if np.issubdtype(arr.dtype, np.unsignedinteger):  # u8: 128 is zero
            half = float(np.iinfo(arr.dtype).max // 2 + 1)
            arr = (arr.astype(np.float64) - half) / half
        elif np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max + 1)
        arr = arr.astype(np.float32)
    return arr


class DecodeWarning(UserWarning):
    """Audio that decoded only in part: damaged packets skipped, or a file that ends before its header says."""


def _memory_available() -> int | None:
    """Bytes this process can still allocate: the least of the system's MemAvailable and the headroom under the
    address-space limit (RLIMIT_AS); None when neither is known."""
    known = [m for m in (_system_available(), _address_space_headroom()) if m is not None]
    return min(known) if known else None


def _proc_kb(path: str, field: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _system_available() -> int | None:
    avail = _proc_kb("/proc/meminfo", "MemAvailable")
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    return avail


def _address_space_headroom() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    used = _proc_kb("/proc/self/status", "VmSize")
    if soft == resource.RLIM_INFINITY or used is None:
        return None
    return max(soft - used, 0)


def _check_fits(path: str, more_samples: int, total_samples: int, channels: int, rate: int) -> None:
    """Refuse (InputError) holding ``more_samples`` more float32 samples per channel (``total_samples`` in all)
    when memory cannot take them."""
    need = more_samples * channels * 4
    avail = _memory_available()
    if avail is not None and need > avail:
        raise InputError(f"{path}: {total_samples / rate / 60:.1f} min of audio ({channels} channel(s) kept) do not "
                         f"fit in memory: {need / 2 ** 30:.2f} GiB needed, {avail / 2 ** 30:.2f} GiB available; "
                         "separate a part of it (offset/duration, -s/-d)")


class _Kept:
    """The decoded samples inside [offset, offset + duration), held in one float32 buffer.

    Only the first ``max_channels`` channels of each frame are kept (the separator uses the first two, as
    Spleeter's ``to_stereo``).  The buffer is sized once from the declared duration and grown in place (realloc)
    only when the file runs longer, so no per-frame copies of every channel pile up before a final concatenate.
    """

    def __init__(self, path: str, rate: int, offset: float, want: int | None, max_channels: int | None,
                 estimate: int | None):
        self.path, self.rate, self.offset, self.want = path, rate, offset, want
        self.max_channels = max_channels
        self.estimate = estimate  # expected kept samples (None: unknown)
        self.buf: np.ndarray | None = None
        self.kept = 0  # samples stored in buf
        self.got = 0  # output samples seen (kept or skipped), counted from the time origin t0
        self.t0: float | None = None  # time (s) of the first output sample relative to the stream start
        self.skip: int | None = None  # output samples to drop at the start
        self.channels: int | None = None  # of the stream as decoded

    def add(self, frame) -> bool:
        """Keep the part of ``frame`` inside the wanted span; True once enough is kept."""
        channels = len(frame.layout.channels)
        if self.channels is None:
            self.channels = channels
        elif channels != self.channels:
            raise InputError(f"{self.path}: channel count changes mid-stream ({self.channels} -> {channels})")
        if self.skip is None:
            self.skip = max(int(round((self.offset - self.t0) * self.rate)), 0)
        arr = _frame_array(frame, self.max_channels)
        n = arr.shape[0]
        lo = max(self.skip - self.got, 0)
        self.got += n
        if lo >= n:
            return False
        part = arr[lo:] if self.want is None else arr[lo:lo + self.want - self.kept]
        if part.shape[0]:
            if not np.isfinite(part).all():
                raise InputError(f"{self.path}: decoded audio contains NaN or Inf")
            self._store(part)
        return self.want is not None and self.kept >= self.want

    def _store(self, part: np.ndarray) -> None:
        end = self.kept + part.shape[0]
        if self.buf is None:
            self.buf = self._allocate(end, part.shape[1])
        elif end > self.buf.shape[0]:
            self._grow(end)
        self.buf[self.kept:end] = part
        self.kept = end

    def _capacity(self, n: int) -> int:
        return n if self.want is None else min(n, self.want)

    def _allocate(self, n: int, channels: int) -> np.ndarray:
        est = self.estimate or 0
        cap = self._capacity(max(n, est + est // 100 + self.rate))  # codecs' padding can outrun the header a little
        _check_fits(self.path, cap, max(n, est), channels, self.rate)
        return np.empty((cap, channels), np.float32)  # pages are only committed as they are written

    def _grow(self, n: int) -> None:
        cap = self.buf.shape[0]
        new = self._capacity(max(n, cap + cap // 4 + self.rate))
        _check_fits(self.path, new - cap, new, self.buf.shape[1], self.rate)
        self.buf.resize((new, self.buf.shape[1]), refcheck=False)  # realloc: no second copy of the samples

    def result(self) -> np.ndarray:
        if self.kept < self.buf.shape[0]:
            self.buf.resize((self.kept, self.buf.shape[1]), refcheck=False)
        return self.buf

    def end_time(self) -> float:
        """Time (s) reached by the decoder, from the stream start."""
        return (self.t0 or 0.0) + self.got / self.rate


def _declared_duration(container, s) -> float | None:
    if s.duration is not None and s.time_base is not None:
        return float(s.duration * s.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _seek(container, s, offset: float) -> float | None:
    """Seek to a little before a far ``offset``; the time sought, or None when decoding from the start."""
    av = _av()
    if offset <= _SEEK_THRESHOLD_S:
        return None
    target = offset - _SEEK_MARGIN_S
    try:
        container.seek(int(target / s.time_base) + (s.start_time or 0), stream=s, backward=True)
        return target
    except (av.FFmpegError, ValueError, OverflowError, TypeError, ZeroDivisionError):
        return None


def load(path, offset: float = 0.0, duration: float | None = None, sample_rate: int | None = 44100,
         stream: int = 0, max_channels: int | None = 2,
         on_warning: Callable[[str], None] | None = None) -> tuple[np.ndarray, int]:
    """Decode audio stream ``stream`` of ``path`` to float32 ``(n, channels)``.

    ``sample_rate=None`` keeps the native rate; otherwise libswresample converts (as ``ffmpeg -ar`` does).
    ``offset``/``duration`` in seconds select a part (``duration=None``: to the end).  The first ``max_channels``
    channels are kept (2: what the separator uses, as Spleeter's ``to_stereo``; None: all).  Returns
    ``(samples, rate)``.  Raises InputError with a one-line reason for anything that cannot be decoded, yields no
    samples or would not fit in memory.  A file that decodes only in part (damaged packets, or ending before its
    header says) is kept as far as it decodes and reported, one line each with the file name, to ``on_warning``
    (default: a :class:`DecodeWarning` through :mod:`warnings`).
    """
    _av()  # a missing PyAV is a clear error before anything else
    p = os.fspath(path)
    if offset < 0:
        raise InputError(f"offset must be >= 0 (got {offset})")
    if duration is not None and duration <= 0:
        raise InputError(f"duration must be > 0 (got {duration})")
    if max_channels is not None and max_channels < 1:
        raise InputError(f"max_channels must be >= 1 (got {max_channels})")
    with _open_input(p) as container:
        s = _audio_stream(container, p, stream)
        native_rate = int(s.codec_context.sample_rate or 0)
        if native_rate <= 0:
            raise InputError(f"{p}: audio stream has no sample rate")
        rate = int(sample_rate) if sample_rate else native_rate
        s.thread_type = "AUTO"
        want = None if duration is None else int(round(duration * rate))
        declared = _declared_duration(container, s)
        estimate = None
        if declared is not None:
            estimate = max(int((declared - offset) * rate), 0)
            if want is not None:
                estimate = min(estimate, want)
            channels = min(int(s.codec_context.channels or 2), max_channels or 1 << 16)
            _check_fits(p, estimate, estimate, channels, rate)
        kept = _Kept(p, rate, offset, want, max_channels, estimate)
        seek_time = _seek(container, s, offset)
        done, bad_packets, stopped = _decode(container, s, kept, rate, seek_time)
    if kept.kept == 0:
        if stopped is not None:
            raise InputError(f"{p}: cannot decode audio ({stopped})")
        if bad_packets:
            raise InputError(f"{p}: audio stream is corrupt (no packet could be decoded)")
        if offset > 0 and kept.got > 0:
            raise InputError(f"{p}: offset {offset:g} s is past the end of the audio ({kept.got / rate:.2f} s)")
        raise InputError(f"{p}: no audio samples decoded")
    notes = [None if done else _shortfall(p, kept.end_time(), declared, stopped)]
    if bad_packets:
        notes.append(f"{p}: {bad_packets} damaged packet(s) could not be decoded and were skipped")
    for msg in filter(None, notes):
        if on_warning is not None:
            on_warning(msg)
        else:
            warnings.warn(msg, DecodeWarning, stacklevel=2)
    return kept.result(), rate


def _decode(container, s, kept: _Kept, rate: int, seek_time: float | None) -> tuple[bool, int, str | None]:
    """Feed the decoded (and resampled) frames of stream ``s`` to ``kept``.

    Returns (whether enough was kept, undecodable packets skipped, why decoding stopped early or None)."""
    av = _av()
    start_ts = s.start_time or 0
    resampler = None
    bad_packets = 0

    def emit(frames) -> bool:
        return any(kept.add(fr) for fr in frames)

    try:
        for packet in container.demux(s):
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                bad_packets += 1  # ffmpeg skips undecodable packets too
                continue
            for frame in frames:
                if kept.t0 is None:
                    if seek_time is not None and frame.pts is not None and frame.time_base is not None:
                        kept.t0 = float((frame.pts - start_ts) * frame.time_base)
                    else:
                        kept.t0 = 0.0  # decoding from the start: count samples, as ffmpeg's output -ss does
                if resampler is None and rate != frame.sample_rate:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
                if emit(resampler.resample(frame) if resampler is not None else [frame]):
                    return True, bad_packets, None
        if resampler is not None and emit(resampler.resample(None)):
            return True, bad_packets, None
    except av.FFmpegError as e:
        return False, bad_packets, _ffmsg(e)  # a truncated or damaged tail: keep what decoded, as ffmpeg does
    return False, bad_packets, None


def _shortfall(path: str, end: float, declared: float | None, stopped: str | None) -> str | None:
    """A warning when the audio stops before the end its header declares, or decoding stopped at an error."""
    short = declared is not None and end < declared - max(0.5, 0.01 * declared)
    if not (short or stopped):
        return None
    msg = f"{path}: the file ends early or is damaged: audio stops at {end:.2f} s"
    if short:
        msg += f" of the {declared:.2f} s its header declares"
    if stopped:
        msg += f" ({stopped})"
    return msg


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 ``(n, channels)`` with libswresample (the resampler ``ffmpeg -ar`` uses)."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float32)
    av = _av()
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    ch = x.shape[1]
    layout = _layout(ch)
    rs = av.AudioResampler(format="fltp", layout=layout, rate=rate_out)
    out = []
    step = 1 << 16
    for i in range(0, x.shape[0], step):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[i:i + step].T), format="fltp", layout=layout)
        fr.sample_rate = rate_in
        fr.pts = None
        out += [_frame_array(f) for f in rs.resample(fr)]
    out += [_frame_array(f) for f in rs.resample(None)]
    y = np.concatenate(out, axis=0) if out else np.zeros((0, ch), np.float32)
    n = int(round(x.shape[0] * rate_out / rate_in))
    if y.shape[0] < n:
        y = np.concatenate([y, np.zeros((n - y.shape[0], ch), np.float32)])
    return np.ascontiguousarray(y[:n])


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels) or f"{channels}c"


def codec_of(path) -> str:
    """Codec name implied by a file name's extension (raises OutputError when unknown)."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    for name, (_, _, e) in CODECS.items():
        if ext == e:
            return name
    raise OutputError(f"{path}: unknown output extension .{ext} (known: {', '.join(c for c in CODECS)})")


def parse_bitrate(bitrate) -> int:
    """'128k' / '320K' / '1.5M' / 192000 -> bits per second."""
    if isinstance(bitrate, (int, float)):
        value = float(bitrate)
    else:
        b = str(bitrate).strip().lower()
        mult = 1
        if b.endswith("k"):
            mult, b = 1000, b[:-1]
        elif b.endswith("m"):
            mult, b = 1_000_000, b[:-1]
        try:
            value = float(b) * mult
        except ValueError:
            raise OutputError(f"invalid bitrate {bitrate!r} (use e.g. 128k)") from None
    if not 8000 <= value <= 3_200_000:
        raise OutputError(f"bitrate {bitrate!r} out of range (8k to 3200k)")
    return int(value)


@dataclasses.dataclass
class SaveReport:
    """What :func:`save` did: clipped sample count and peak of the input (for integer PCM outputs)."""

    path: str
    clipped: int = 0
    peak: float = 0.0


def _to_int(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """float (n, ch) in [-1, 1) -> int16/int32 (24-bit values left-aligned in int32 as FFmpeg's s32); clip count."""
    scale = float(1 << (bits - 1))
    y = np.rint(x.astype(np.float64) * scale)
    lo, hi = -scale, scale - 1
    clipped = int(np.count_nonzero((y < lo) | (y > hi)))
    np.clip(y, lo, hi, out=y)
    if bits == 16:
        return y.astype(np.int16), clipped
    return (y.astype(np.int32) << (32 - bits)), clipped


def save(path, data: np.ndarray, sample_rate: int = 44100, codec: str | None = None, bitrate="128k",
         pcm: str = "s16", overwrite: bool = True, cancel: threading.Event | None = None) -> SaveReport:
    """Encode float32 ``(n, channels)`` to ``path`` atomically.

    ``codec`` defaults to the one implied by the extension.  wav is ``pcm`` ("s16", "s24" or "f32"); flac is 16-bit
    for "s16" and 24-bit otherwise.  Integer outputs clip at full scale: the count of clipped samples is returned
    (callers must tell the user).  ``bitrate`` applies to the lossy codecs.  The file is written to a hidden
    temporary file in the destination folder and renamed into place only when complete; with
    ``overwrite=False`` an existing file is never replaced (OutputExistsError).  ``cancel`` (an Event) aborts the
    write between chunks, leaving no file behind.
    """
    av = _av()
    path = pathlib.Path(path)
    codec = codec or codec_of(path)
    if codec not in CODECS:
        raise OutputError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    if pcm not in PCM_FORMATS:
        raise OutputError(f"unknown PCM format {pcm!r} (known: {', '.join(PCM_FORMATS)})")
    x = np.asarray(data)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise OutputError(f"{path}: audio must be (samples, channels), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    channels = x.shape[1]
    layout = _layout(channels)
    fmt, encoder, _ = CODECS[codec]
    report = SaveReport(str(path), peak=float(np.max(np.abs(x))) if x.size else 0.0)

    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists (use --overwrite to replace it)")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(path, os.getpid()), suffix=".part")
        os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write to {folder}: {e.strerror or e}") from None
    tmp = pathlib.Path(tmp)
    try:
        # Integer PCM is converted here (not by swresample) so clipping is counted, never silent.
        if codec == "wav":
            encoder = {"s16": "pcm_s16le", "s24": "pcm_s24le", "f32": "pcm_f32le"}[pcm]
        rate = sample_rate
        if codec == "opus":
            rate = 48000  # Opus only codes 8/12/16/24/48 kHz
        with av.open(str(tmp), "w", format=fmt) as out:
            st = out.add_stream(encoder, rate=rate, layout=layout)
            if codec in ("mp3", "ogg", "opus", "m4a", "wma"):
                st.codec_context.bit_rate = parse_bitrate(bitrate)
            if codec == "ogg":
                st.codec_context.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder
            if encoder == "pcm_s16le" or (codec == "flac" and pcm == "s16"):
                frame_fmt, bits = "s16", 16
            elif encoder == "pcm_s24le" or codec == "flac":
                frame_fmt, bits = "s32", 24
            elif encoder == "pcm_f32le":
                frame_fmt, bits = "flt", 0
            elif codec == "opus":
                frame_fmt, bits = "flt", 0
            else:
                frame_fmt, bits = "fltp", 0
            # PyAV would otherwise convert to the encoder's first sample format (flac: s16, mp3: s32p).
            st.codec_context.format = frame_fmt
            if bits:
                y, report.clipped = _to_int(x, bits)
            else:
                y = x
            step = 1 << 16
            pts = 0
            for i in range(0, y.shape[0], step):
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                block = y[i:i + step]
                if frame_fmt == "fltp":
                    arr = np.ascontiguousarray(block.T)
                else:
                    arr = np.ascontiguousarray(block.reshape(1, -1))
                fr = av.AudioFrame.from_ndarray(arr, format=frame_fmt, layout=layout)
                fr.sample_rate = sample_rate
                fr.pts = pts
                pts += block.shape[0]
                for packet in st.encode(fr):
                    out.mux(packet)
            for packet in st.encode(None):
                out.mux(packet)
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        _fsync(tmp)
        _commit(tmp, path, overwrite)
        _fsync(folder)  # the rename itself survives a power cut
    except av.FFmpegError as e:
        raise OutputError(f"cannot encode {path} as {codec}: {_ffmsg(e)}") from None
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass
    return report


def _commit(tmp: pathlib.Path, path: pathlib.Path, overwrite: bool) -> None:
    """Move the finished temporary file into place (never replacing an existing file unless ``overwrite``)."""
    os.chmod(tmp, 0o666 & ~_UMASK)
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists: no race with another writer
    except FileExistsError:
        raise OutputExistsError(f"{path} exists (use --overwrite to replace it)") from None
    except OSError:
        if path.exists():
            raise OutputExistsError(f"{path} exists (use --overwrite to replace it)") from None
        os.replace(tmp, path)  # filesystems without hard links
        return
    tmp.unlink()


def _temp_prefix(path: pathlib.Path, pid: int) -> str:
    """Hidden temp files of ``path`` are ``.<name>.<pid>-<random>.part``: the pid tells a live writer's file from
    one that a killed run left behind."""
    return f".{path.name}.{pid}-"


_TEMP_TAG = re.compile(r"(?:(\d+)-)?[a-z0-9_]{8}")  # [pid-] and mkstemp's 8 random characters


def _remove_stale_temps(path: pathlib.Path, legacy_age_s: float = 60.0) -> None:
    """Delete the temp files of ``path`` whose writing process is gone (a run killed mid-write).

    Temp names from before the pid tag (``.<name>.<random>.part``) go once they are a minute old."""
    for p in path.parent.glob(f".{glob_escape(path.name)}.*.part"):
        tag = _TEMP_TAG.fullmatch(p.name[len(path.name) + 2:-len(".part")])
        if tag is None:  # another target's temp file (e.g. of "<name>.x.wav")
            continue
        pid = tag.group(1)
        try:
            if pid is not None:
                stale = int(pid) != os.getpid() and not _pid_alive(int(pid))
            else:
                stale = time.time() - p.stat().st_mtime > legacy_age_s
            if stale:
                p.unlink()
        except OSError:
            pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or a pid we cannot test): keep its file
    return True


def _fsync(path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _read_umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


def silence_ffmpeg_logs() -> None:
    """Keep FFmpeg's own log lines off stderr (errors reach the user as exceptions)."""
    try:
        av = _av()
        av.logging.set_level(None)
    except Exception:  # noqa: BLE001 - logging setup is best effort
        pass

