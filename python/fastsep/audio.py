"""Audio decoding and encoding through PyAV (FFmpeg's libraries; no ffmpeg binary needed), block by block.

Spleeter (docs/spec.md) pipes the ``ffmpeg`` command line: decode with ``-ar 44100``, trim with output-side
``-ss``/``-t`` (decode from the start and drop), keep the native channel layout (which the separator cuts to the
first two channels; :class:`Decoder` keeps only those as it decodes).  :class:`Decoder` does the same in blocks,
converting rates with fastsep.resample's streaming resampler (fastsep._cpu.Resampler, far closer to exact than swresample's
default filter; 44.1 kHz input, the parity case, is not resampled at all).  :class:`StemWriter` encodes wav
(16/24-bit PCM or float), flac, mp3, ogg (Vorbis), opus, m4a (AAC) and wma block by block into a hidden temporary
file in the destination folder that is renamed into place only when complete; :func:`save` writes a whole array.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import threading
import warnings
from typing import Callable, Iterator

import numpy as np

from . import atomic
from . import resample as _resample
from .errors import FastsepError, InputError
from .optional import require
from .resample import StreamResampler

#: What a stem's hidden temporary file ends with (fastsep.atomic names it; outputs.TEMP_NAME_EXTRA counts it).
TEMP_SUFFIX = ".part"

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
#: Most channels an output file may have (FFmpeg's channel layouts stop at 64).
MAX_CHANNELS = 64
# Lossy encoders that lose the end of a stem: FFmpeg's Vorbis and WMA encoders drop the last partial block (up to
# 1024 / 2048 samples), and an opus or m4a stem of a few samples decodes to nothing at all. Silence of one frame
# (at least this many samples) is appended to these codecs' stems so that every sample written decodes.
_TAIL_PADDED = ("ogg", "opus", "m4a", "wma")
_TAIL_PAD_MIN = 1024

# Decoding from the start and dropping samples is exact (what ffmpeg's output-side -ss does); beyond this offset a
# container seek to a little before the offset is used instead, and timestamps place the cut.
_SEEK_THRESHOLD_S = 60.0
_SEEK_MARGIN_S = 5.0


class OutputError(FastsepError):
    """An output file or folder that cannot be written."""


class OutputExistsError(OutputError):
    """An output that already exists (and --overwrite was not given)."""


def _av():
    # installed but not loadable (a broken install, or no memory left to map it): "PyAV is installed but ..."
    return require("av", extra="audio", what="Audio decoding and encoding", broken="PyAV")


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


_DECODE_RESERVE = 32 << 20  # bytes the decoder itself needs beside the kept samples (frames, conversions)


def _check_fits(path: str, more_samples: int, total_samples: int, channels: int, rate: int,
                declared: int | None = None) -> None:
    """Refuse (InputError) holding ``more_samples`` more float32 samples per channel (``total_samples`` in all)
    when memory cannot take them; ``declared``: the samples the file's header claims, named in the message."""
    need = more_samples * channels * 4
    avail = _memory_available()
    if avail is not None and need + _DECODE_RESERVE > avail:
        raise InputError(f"{path}: {total_samples / rate / 60:.1f} min of audio ({channels} channel(s) kept) do not "
                         f"fit in memory{_declares(declared, rate)}: {need / 2 ** 30:.2f} GiB more needed, "
                         f"{avail / 2 ** 30:.2f} GiB available; separate a part of it (offset/duration, -s/-d)")


def _declares(declared: int | None, rate: int) -> str:
    return f" (its header declares {declared / rate / 60:.1f} min)" if declared else ""


class _Span:
    """Cuts the decoded stream (at the output rate) to [offset, offset + duration), as ffmpeg's output-side -ss/-t:
    samples are counted from the time origin t0 (0 when decoding from the start, else the first frame's time)."""

    def __init__(self, path: str, rate: int, offset: float, want: int | None):
        self.path, self.rate, self.offset, self.want = path, rate, offset, want
        self.kept = 0  # samples passed on
        self.got = 0  # output samples seen (kept or skipped), counted from t0
        self.t0: float | None = None  # time (s) of the first output sample relative to the stream start
        self.skip: int | None = None  # output samples to drop at the start

    def cut(self, arr: np.ndarray) -> tuple[np.ndarray, bool]:
        """The part of ``arr`` inside the wanted span, and whether the span is complete."""
        if self.skip is None:
            self.skip = max(int(round((self.offset - (self.t0 or 0.0)) * self.rate)), 0)
        n = arr.shape[0]
        lo = max(self.skip - self.got, 0)
        self.got += n
        if lo >= n:
            return arr[:0], False
        part = arr[lo:] if self.want is None else arr[lo:lo + self.want - self.kept]
        if part.shape[0] and not np.isfinite(part).all():
            raise InputError(f"{self.path}: decoded audio contains NaN or Inf")
        self.kept += part.shape[0]
        return part, self.want is not None and self.kept >= self.want

    def end_time(self) -> float:
        """Time (s) reached by the decoder, from the stream start."""
        return (self.t0 or 0.0) + self.got / self.rate


class Decoder:
    """One audio stream of a file, decoded, resampled and cut block by block (memory: one block).

    Opening checks the file (InputError with a one-line reason); :meth:`blocks` yields float32 ``(n, channels)``
    arrays of at least ``block_samples`` samples (the last may be shorter) and reports, at the end, a file that
    decoded only in part (see :func:`load`). The first ``max_channels`` channels are kept (None: all); rates are
    converted by fastsep.resample's streaming resampler (fastsep._cpu.Resampler)."""

    def __init__(self, path, offset: float = 0.0, duration: float | None = None, sample_rate: int | None = None,
                 stream: int = 0, max_channels: int | None = 2, on_warning: Callable[[str], None] | None = None,
                 block_samples: int = 1 << 16):
        _av()  # a missing PyAV is a clear error before anything else
        p = os.fspath(path)
        if offset < 0:
            raise InputError(f"offset must be >= 0 (got {offset})")
        if duration is not None and duration <= 0:
            raise InputError(f"duration must be > 0 (got {duration})")
        if max_channels is not None and max_channels < 1:
            raise InputError(f"max_channels must be >= 1 (got {max_channels})")
        self.path, self.offset, self.duration = p, offset, duration
        self.max_channels, self.on_warning, self.block_samples = max_channels, on_warning, block_samples
        self._container = _open_input(p)
        try:
            self._stream = _audio_stream(self._container, p, stream)
            self.native_rate = int(self._stream.codec_context.sample_rate or 0)
            if self.native_rate <= 0:
                raise InputError(f"{p}: audio stream has no sample rate")
            self._stream.thread_type = "AUTO"
            self.declared = _declared_duration(self._container, self._stream)
            self.channels = min(int(self._stream.codec_context.channels or 2), max_channels or 1 << 16)
        except BaseException:
            self.close()
            raise
        self.rate = int(sample_rate) if sample_rate else self.native_rate

    @property
    def want(self) -> int | None:
        """Samples asked for (None: to the end)."""
        return None if self.duration is None else int(round(self.duration * self.rate))

    @property
    def expected(self) -> int | None:
        """Samples the container's header promises within the span (None when it does not say)."""
        if self.declared is None:
            return self.want
        n = max(int((self.declared - self.offset) * self.rate), 0)
        return n if self.want is None else min(n, self.want)

    def close(self) -> None:
        self._container.close()

    def blocks(self) -> Iterator[np.ndarray]:
        try:
            span = _Span(self.path, self.rate, self.offset, self.want)
            seek_time = _seek(self._container, self._stream, self.offset)
            state = _DecodeState()
            pending, n = [], 0
            for part in self._parts(span, seek_time, state):
                pending.append(part)
                n += part.shape[0]
                if n >= self.block_samples:
                    yield np.concatenate(pending) if len(pending) > 1 else pending[0]
                    pending, n = [], 0
            if pending:
                yield np.concatenate(pending) if len(pending) > 1 else pending[0]
            self._report(span, state)
        finally:
            self.close()

    def _parts(self, span: _Span, seek_time: float | None, state: "_DecodeState") -> Iterator[np.ndarray]:
        """Decoded frames gathered in an AudioFifo and converted a block at a time (per-frame NumPy work would
        cost more than decoding), resampled and cut to the span."""
        av = _av()
        s = self._stream
        start_ts = s.start_time or 0
        fifo = av.AudioFifo()
        channels = None
        convert = _Conversion(self.rate, self.max_channels, span, state)
        try:
            for packet in self._container.demux(s):
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    state.bad_packets += 1  # ffmpeg skips undecodable packets too
                    continue
                for frame in frames:
                    if span.t0 is None:
                        if seek_time is not None and frame.pts is not None and frame.time_base is not None:
                            span.t0 = float((frame.pts - start_ts) * frame.time_base)
                        else:
                            span.t0 = 0.0  # decoding from the start: count samples, as ffmpeg's output -ss does
                    if channels is None:
                        channels = len(frame.layout.channels)
                    elif len(frame.layout.channels) != channels:
                        raise InputError(f"{self.path}: channel count changes mid-stream ({channels} -> "
                                         f"{len(frame.layout.channels)})")
                    frame.pts = None  # the fifo checks continuity of timestamps; t0 is all the span needs
                    fifo.write(frame)
                if fifo.samples >= self.block_samples:
                    yield from convert(fifo.read())
                    if state.done:
                        return
        except av.FFmpegError as e:
            state.stopped = _ffmsg(e)  # a truncated or damaged tail: keep what decoded, as ffmpeg does
        if fifo.samples:
            yield from convert(fifo.read())
        if not state.done:
            yield from convert(None)


    def _report(self, span: _Span, state: "_DecodeState") -> None:
        p = self.path
        if span.kept == 0:
            if state.stopped is not None:
                raise InputError(f"{p}: cannot decode audio ({state.stopped})")
            if state.bad_packets:
                raise InputError(f"{p}: audio stream is corrupt (no packet could be decoded)")
            if self.offset > 0 and span.got > 0:
                raise InputError(f"{p}: offset {self.offset:g} s is past the end of the audio "
                                 f"({span.got / self.rate:.2f} s)")
            raise InputError(f"{p}: no audio samples decoded")
        notes = [None if state.done else _shortfall(p, span.end_time(), self.declared, state.stopped)]
        if state.bad_packets:
            notes.append(f"{p}: {state.bad_packets} damaged packet(s) could not be decoded and were skipped")
        for msg in filter(None, notes):
            if self.on_warning is not None:
                self.on_warning(msg)
            else:
                warnings.warn(msg, DecodeWarning, stacklevel=4)


class _Conversion:
    """Decoded frames -> float32 (n, kept channels) at the output rate, inside the span (the resampler's state
    carried from block to block)."""

    def __init__(self, rate: int, max_channels: int | None, span: _Span, state: "_DecodeState"):
        self.rate, self.max_channels, self.span, self.state = rate, max_channels, span, state
        self.resampler: StreamResampler | None = None

    def __call__(self, frame) -> Iterator[np.ndarray]:
        """One frame's samples; None flushes the resampler."""
        if frame is None:
            if self.resampler is None:
                return
            arr = self.resampler.process(np.zeros((0, self.resampler.channels), np.float32), last=True)
        else:
            arr = _frame_array(frame, self.max_channels)
            if self.resampler is None and frame.sample_rate != self.rate:
                self.resampler = StreamResampler(frame.sample_rate, self.rate, arr.shape[1])
            if self.resampler is not None:
                arr = self.resampler.process(arr)
        part, self.state.done = self.span.cut(arr)
        if part.shape[0]:
            yield part

@dataclasses.dataclass
class _DecodeState:
    done: bool = False  # the span is complete
    bad_packets: int = 0  # undecodable packets skipped
    stopped: str | None = None  # why decoding stopped early


_FIRST_BUFFER_S = 60  # seconds: the first buffer when the header's duration does not fit in memory


class _Kept:
    """Decoded blocks held in one float32 buffer, sized once from the declared duration (when that fits in memory)
    and grown in place (realloc) when the file runs longer, so no per-block copies pile up before a final
    concatenate. Memory is checked against what is decoded as the buffer grows, never against the header alone."""

    def __init__(self, path: str, rate: int, want: int | None, estimate: int | None):
        self.path, self.rate, self.want, self.estimate = path, rate, want, estimate
        self.buf: np.ndarray | None = None
        self.kept = 0

    def store(self, part: np.ndarray) -> None:
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
        avail = _memory_available()
        if avail is not None and cap * channels * 4 + _DECODE_RESERVE > avail:
            cap = self._capacity(max(n, _FIRST_BUFFER_S * self.rate))  # a header claiming more than fits: grow
        _check_fits(self.path, cap, max(n, cap), channels, self.rate, self.estimate)
        return np.empty((cap, channels), np.float32)  # pages are only committed as they are written

    def _grow(self, n: int) -> None:
        cap = self.buf.shape[0]
        new = self._capacity(max(n, cap + cap // 4 + self.rate))
        _check_fits(self.path, new - cap, new, self.buf.shape[1], self.rate, self.estimate)
        self.buf.resize((new, self.buf.shape[1]), refcheck=False)  # realloc: no second copy of the samples

    def result(self) -> np.ndarray:
        if self.kept < self.buf.shape[0]:
            self.buf.resize((self.kept, self.buf.shape[1]), refcheck=False)
        return self.buf


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

    ``sample_rate=None`` keeps the native rate; otherwise the streaming resampler (fastsep._cpu.Resampler) converts.
    ``offset``/``duration`` in seconds select a part (``duration=None``: to the end).  The first ``max_channels``
    channels are kept (2: what the separator uses, as Spleeter's ``to_stereo``; None: all).  Returns
    ``(samples, rate)``.  Raises InputError with a one-line reason for anything that cannot be decoded, yields no
    samples or would not fit in memory.  A file that decodes only in part (damaged packets, or ending before its
    header says) is kept as far as it decodes and reported, one line each with the file name, to ``on_warning``
    (default: a :class:`DecodeWarning` through :mod:`warnings`).  :class:`Decoder` streams the same blocks.
    """
    dec = Decoder(path, offset, duration, sample_rate, stream, max_channels, on_warning)
    try:
        # The header's duration only sizes the first buffer, and only when it fits: a header may claim hours that
        # the file does not hold. What decodes is checked as the buffer grows (_Kept).
        kept = _Kept(dec.path, dec.rate, dec.want, dec.expected)
        try:
            for block in dec.blocks():
                kept.store(block)
        except MemoryError:  # what the checks as the buffer grows could not foresee (other threads, the decoder)
            kept.buf = None
            raise InputError(f"{dec.path}: ran out of memory after {kept.kept / dec.rate / 60:.1f} min of audio"
                             f"{_declares(kept.estimate, dec.rate)}; separate a part of it (offset/duration, -s/-d)"
                             ) from None
    finally:
        dec.close()
    return kept.result(), dec.rate


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
    """Resample float32 ``(n, channels)`` with the streaming resampler (fastsep._cpu.Resampler), to round(n * rate_out / rate_in)
    samples."""
    return _resample.resample(np.asarray(x, dtype=np.float32), rate_in, rate_out)


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
    # In float32 when the input is float32: scaling by a power of two and rounding to an integer below 2**24 are
    # exact there, so the result equals float64's at a quarter of the memory traffic (the stems' encode cost).
    y = np.multiply(x, np.float32(scale) if x.dtype == np.float32 else scale)
    np.rint(y, out=y)
    lo, hi = -scale, scale - 1
    clipped = int(np.count_nonzero(y < lo)) + int(np.count_nonzero(y > hi))
    np.clip(y, lo, hi, out=y)
    if bits == 16:
        return y.astype(np.int16), clipped
    return (y.astype(np.int32) << (32 - bits)), clipped


@contextlib.contextmanager
def _encoding_errors(path, codec: str):
    """FFmpeg and OS errors while encoding, as one-line OutputErrors."""
    av = _av()
    try:
        yield
    except av.FFmpegError as e:
        raise OutputError(f"cannot encode {path} as {codec}: {_ffmsg(e)}") from None
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


class StemWriter:
    """Encodes one output file block by block into a hidden temporary file in the destination folder.

    :meth:`commit` flushes the encoder, fsyncs and renames the file into place (never replacing an existing file
    unless ``overwrite``); :meth:`abort` (or an exception inside a ``with`` block) removes it, so no truncated file
    ever carries the final name.  ``codec`` defaults to the one implied by the extension.  wav is ``pcm`` ("s16",
    "s24" or "f32"); flac is 16-bit for "s16" and 24-bit otherwise.  Integer outputs clip at full scale: the count
    of clipped samples is in the report (callers must tell the user).  ``bitrate`` applies to the lossy codecs.
    """

    def __init__(self, path, sample_rate: int, channels: int = 2, codec: str | None = None, bitrate="128k",
                 pcm: str = "s16", overwrite: bool = True):
        av = _av()
        path = pathlib.Path(path)
        codec = codec or codec_of(path)
        if codec not in CODECS:
            raise OutputError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
        if pcm not in PCM_FORMATS:
            raise OutputError(f"unknown PCM format {pcm!r} (known: {', '.join(PCM_FORMATS)})")
        if not 1 <= channels <= MAX_CHANNELS:
            raise OutputError(f"{path}: audio must have 1 to {MAX_CHANNELS} channels, not {channels} (arrays are "
                              "(samples, channels))")
        if not overwrite and path.exists():
            raise OutputExistsError(f"{path} exists (use --overwrite to replace it)")
        self.path, self.codec, self.overwrite, self.sample_rate = path, codec, overwrite, int(sample_rate)
        self.channels, self.layout = channels, _layout(channels)
        self.report = SaveReport(str(path))
        self._pts = 0  # samples written
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic.remove_stale_temps(path, TEMP_SUFFIX)
            fd, self._tmp = atomic.create_temp(path, TEMP_SUFFIX)
            os.close(fd)
        except OSError as e:
            raise OutputError(f"cannot write to {folder}: {e.strerror or e}") from None
        self._out = None
        try:
            self._open(av, bitrate, pcm)
        except BaseException:
            self.abort()
            raise

    def _open(self, av, bitrate, pcm: str) -> None:
        fmt, encoder, _ = CODECS[self.codec]
        # Integer PCM is converted here (not by swresample) so clipping is counted, never silent.
        if self.codec == "wav":
            encoder = {"s16": "pcm_s16le", "s24": "pcm_s24le", "f32": "pcm_f32le"}[pcm]
        rate = 48000 if self.codec == "opus" else self.sample_rate  # Opus only codes 8/12/16/24/48 kHz
        with self._errors():
            self._out = av.open(str(self._tmp), "w", format=fmt)
            st = self._out.add_stream(encoder, rate=rate, layout=self.layout)
            if self.codec in ("mp3", "ogg", "opus", "m4a", "wma"):
                st.codec_context.bit_rate = parse_bitrate(bitrate)
            if self.codec == "ogg":
                st.codec_context.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder
            if encoder == "pcm_s16le" or (self.codec == "flac" and pcm == "s16"):
                self._frame_fmt, self._bits = "s16", 16
            elif encoder == "pcm_s24le" or self.codec == "flac":
                self._frame_fmt, self._bits = "s32", 24
            elif encoder in ("pcm_f32le", "libopus"):
                self._frame_fmt, self._bits = "flt", 0
            else:
                self._frame_fmt, self._bits = "fltp", 0
            # PyAV would otherwise convert to the encoder's first sample format (flac: s16, mp3: s32p).
            st.codec_context.format = self._frame_fmt
            self._st = st

    def _errors(self):
        return _encoding_errors(self.path, self.codec)

    @property
    def samples(self) -> int:
        """Samples written so far (per channel)."""
        return self._pts

    def write(self, block: np.ndarray) -> None:
        """Encode (n, channels) float samples; NaN or Inf samples are refused (OutputError), never written."""
        x = _samples(block, self.path)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise OutputError(f"{self.path}: blocks must be (samples, {self.channels}), got shape {x.shape}")
        if x.shape[0] == 0:
            return
        peak = float(np.max(np.abs(x)))  # NaN when any sample is NaN
        if not np.isfinite(peak):
            # 16-bit PCM would turn them into silence, float formats into files no player (nor fastsep) reads
            raise OutputError(f"{self.path}: the audio holds NaN or Inf samples; nothing written")
        self.report.peak = max(self.report.peak, peak)
        self._encode(x)

    def _encode(self, x: np.ndarray) -> None:
        av = _av()
        if self._bits:
            x, clipped = _to_int(x, self._bits)
            self.report.clipped += clipped
        step = 1 << 16
        with self._errors():
            for i in range(0, x.shape[0], step):
                part = x[i:i + step]
                arr = np.ascontiguousarray(part.T if self._frame_fmt == "fltp" else part.reshape(1, -1))
                fr = av.AudioFrame.from_ndarray(arr, format=self._frame_fmt, layout=self.layout)
                fr.sample_rate = self.sample_rate
                fr.pts = self._pts
                self._pts += part.shape[0]
                for packet in self._st.encode(fr):
                    self._out.mux(packet)

    def commit(self) -> SaveReport:
        """Finish the file and move it into place. A stem without samples is refused (OutputError): FFmpeg's
        Vorbis encoder never returns from an empty stream, and the other codecs give empty or unreadable files."""
        try:
            if self._pts == 0:
                raise OutputError(f"{self.path}: no audio samples to write (the stem is empty); nothing written")
            with self._errors():
                if self.codec in _TAIL_PADDED:
                    pad = max(int(self._st.codec_context.frame_size or 0), _TAIL_PAD_MIN)
                    self._encode(np.zeros((pad, self.channels), np.float32))
                for packet in self._st.encode(None):
                    self._out.mux(packet)
                self._out.close()
                self._out = None
                if os.path.getsize(self._tmp) == 0:  # never a 0-byte file under a stem's name
                    raise OutputError(f"{self.path}: the {self.codec} encoder wrote nothing; nothing written")
                try:
                    atomic.commit(self._tmp, self.path, self.overwrite)
                except FileExistsError:
                    raise OutputExistsError(f"{self.path} exists (use --overwrite to replace it)") from None
        finally:
            self.abort()
        return self.report

    def abort(self) -> None:
        """Drop the file (nothing is left under any name); a no-op after commit."""
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
            self._out = None
        try:
            self._tmp.unlink()
        except OSError:
            pass

    def __enter__(self) -> "StemWriter":
        return self

    def __exit__(self, kind, e, tb) -> None:
        if kind is not None:
            self.abort()


def save(path, data: np.ndarray, sample_rate: int = 44100, codec: str | None = None, bitrate="128k",
         pcm: str = "s16", overwrite: bool = True, cancel: threading.Event | None = None) -> SaveReport:
    """Encode float32 ``(n, channels)`` to ``path`` atomically (see :class:`StemWriter`).

    The file is written to a hidden temporary file in the destination folder and renamed into place only when
    complete; with ``overwrite=False`` an existing file is never replaced (OutputExistsError).  ``cancel`` (an
    Event) aborts the write between chunks, leaving no file behind.
    """
    x = _samples(data, path)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise OutputError(f"{path}: audio must be (samples, channels), got shape {x.shape}")
    if x.shape[0] == 0:
        raise OutputError(f"{path}: no audio samples to write (the array is empty); nothing written")
    with StemWriter(path, sample_rate, x.shape[1], codec, bitrate, pcm, overwrite) as w:
        step = 1 << 16
        for i in range(0, x.shape[0], step):
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            w.write(x[i:i + step])
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        return w.commit()


def _samples(data, path) -> np.ndarray:
    """``data`` as a float32 array (any byte order, float or integer samples); OutputError for anything else."""
    try:
        x = np.asarray(data)
    except (ValueError, TypeError) as e:  # ragged lists and the like
        raise OutputError(f"{path}: audio must be a numeric array ({e})") from None
    if x.dtype.kind not in "fiu":
        raise OutputError(f"{path}: audio must hold float or integer samples, not {x.dtype}")
    return x.astype(np.float32, copy=False)  # also converts big-endian arrays


def silence_ffmpeg_logs() -> None:
    """Keep FFmpeg's own log lines off stderr (errors reach the user as exceptions)."""
    try:
        av = _av()
        av.logging.set_level(None)
    except Exception:  # noqa: BLE001 - logging setup is best effort
        pass

