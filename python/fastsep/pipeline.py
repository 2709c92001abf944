"""The host (CPU) pipeline, streaming a bounded batch of segments at a time.

The five steps run in C++ (fastsep._cpu, docs/architecture.md §4.7): STFT, network, masks, inverse STFT and
overlap-add in one chunk loop, with the DSP of neighbouring chunks beside the network and the GIL released for the
whole song. The network is OpenVINO's C++ runtime where the backend provides it, else the runner called back per
chunk. Audio goes in as blocks of any size and comes out as blocks of finished samples (docs/spec.md §5); memory
depends on batch_segments, never on the song's length.

The multichannel Wiener filter (and the measured alternatives of fastsep.quality) still run on the NumPy DSP
(dsp.py) below, in two passes over the song.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from . import dsp
from .errors import FastsepError, InputError, ModelError
from .models.config import ModelConfig
from .quality import segment_hop
from .quality_options import Quality

Progress = Callable[[int, int], None]  # (segments done, segments in all; 0 while unknown)


class Runner(Protocol):
    def run(self, magnitudes: np.ndarray) -> np.ndarray: ...


class _Input:
    """The input waveform, held from the first sample the next batch of segments needs.

    `batches` turns blocks into (first segment, segments, spectrum (2, frames, bins)) in the order and grouping of
    a whole-song run, so the streamed result is bit-identical to it."""

    def __init__(self, cfg: ModelConfig, keep: Callable[[np.ndarray], None] | None = None):
        self.cfg = cfg
        self.keep = keep  # sees every input block (the Wiener filter spills them for its second pass)
        self.buf = np.zeros((0, 2), np.float32)
        self.origin = 0  # original index of buf[0], a multiple of frame_step
        self.received = 0
        self.length: int | None = None  # known once the input has ended

    def _append(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"blocks must be (n, 2) float32, got shape {x.shape}")
        if self.keep is not None:
            self.keep(x)
        # a first (or whole-song) block is held as it is: no copy of a song the caller already holds
        self.buf = x if self.buf.shape[0] == 0 else np.concatenate([self.buf, x])
        self.received += x.shape[0]

    def _spectrum(self, s0: int, nseg: int) -> np.ndarray:
        cfg = self.cfg
        first = s0 * cfg.T - self.origin // cfg.frame_step
        return dsp.stft_frames(self.buf, first, nseg * cfg.T, cfg.frame_length, cfg.frame_step)

    def _release(self, next_segment: int) -> None:
        """Drop the samples that no frame from `next_segment` on reads."""
        cfg = self.cfg
        start = max(next_segment * cfg.T * cfg.frame_step - cfg.frame_length, 0)
        if start > self.origin:
            self.buf = self.buf[start - self.origin:]
            self.origin = start

    def batches(self, blocks: Iterable[np.ndarray], batch_segments: int):
        cfg = self.cfg
        TH, N, H = cfg.T * cfg.frame_step, cfg.frame_length, cfg.frame_step
        s0 = 0
        for x in blocks:
            self._append(x)
            # a full batch is ready once its last frame's samples are in: the same batch a whole-song run makes
            while self.received >= (s0 + batch_segments) * TH - H:
                yield s0, batch_segments, self._spectrum(s0, batch_segments)
                s0 += batch_segments
                self._release(s0)
        self.length = self.received
        total = dsp.n_segments(self.length, cfg.T, N, H)
        while s0 < total:
            nseg = min(batch_segments, total - s0)
            yield s0, nseg, self._spectrum(s0, nseg)
            s0 += nseg
            self._release(s0)


class _OverlapAdd:
    """Sums the inverse STFT of consecutive batches and hands out the samples that no later frame touches."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.tails = np.zeros((cfg.n_stems, 2, cfg.frame_length - cfg.frame_step), np.float32)
        self.emitted = 0

    def add(self, stems: list[np.ndarray], s0: int, nseg: int, length: int | None) -> list[np.ndarray]:
        """stems: per stem (2, count*H + N - H) from original sample s0*T*H - N -> per stem (n, 2) final samples."""
        cfg = self.cfg
        N, H = cfg.frame_length, cfg.frame_step
        start = s0 * cfg.T * H - N
        done = nseg * cfg.T * H  # samples of the block that are final: later frames start past them
        lo = max(self.emitted - start, 0)
        hi = done if length is None else min(done, length - start)
        out = []
        for i, block in enumerate(stems):
            block[:, :N - H] += self.tails[i]
            self.tails[i] = block[:, done:]
            out.append(np.ascontiguousarray(block[:, lo:max(hi, lo)].T))
        self.emitted = start + max(hi, lo)
        return out


class _Spill:
    """Unnamed temporary files (gone when closed or when the process dies) for the Wiener filter's second pass."""

    def __init__(self, folder: str | os.PathLike | None):
        self.waveform = tempfile.TemporaryFile(dir=folder, prefix=".fastsep-mwf-")
        self.estimates = tempfile.TemporaryFile(dir=folder, prefix=".fastsep-mwf-")

    def keep_waveform(self, x: np.ndarray) -> None:
        self.waveform.write(np.ascontiguousarray(x, np.float32).tobytes())

    def waveform_blocks(self, samples: int = 1 << 18) -> Iterator[np.ndarray]:
        self.waveform.seek(0)
        while True:
            data = self.waveform.read(samples * 8)
            if not data:
                return
            yield np.frombuffer(data, np.float32).reshape(-1, 2)

    def read_estimates(self, shape: tuple) -> np.ndarray:
        n = int(np.prod(shape)) * 4
        return np.frombuffer(self.estimates.read(n), np.float32).reshape(shape)

    def close(self) -> None:
        self.waveform.close()
        self.estimates.close()


def native_module():
    """fastsep._cpu, the compiled CPU pipeline."""
    from . import _cpu

    return _cpu


def native_errors(error: Exception) -> Exception:
    """fastsep._cpu's exception as a FastsepError (anything else unchanged)."""
    cpu = native_module()
    if isinstance(error, cpu.InputError):
        return InputError(str(error))
    if isinstance(error, cpu.ModelError):
        return ModelError(str(error))
    if isinstance(error, (cpu.StateError, cpu.InvalidArgument, cpu.NativeError)):
        return FastsepError(str(error))
    return error


def native_network(runner: Runner, cfg: ModelConfig, batch: int):
    """The runner's network for fastsep._cpu: its own native one (OpenVINO, compiled for this batch), else the
    runner called back."""
    network = getattr(runner, "native", None)
    if network is not None and getattr(runner, "batch", None) == batch:
        return network

    def run(magnitudes: np.ndarray, estimates: np.ndarray) -> None:
        estimates[...] = runner.run(magnitudes)

    return native_module().CallbackNetwork(run, cfg.n_stems, cfg.T, cfg.F)


class HostPipeline:
    """The five steps of docs/spec.md on the CPU; step 2 by `runner`. Memory is flat in the song's length."""

    def __init__(self, cfg: ModelConfig, runner: Runner, batch_segments: int = 1, mwf: bool = False,
                 spill_dir: str | os.PathLike | None = None, quality: Quality | None = None,
                 threads: int | None = None):
        self.cfg = cfg
        self.runner = runner
        self.batch_segments = max(1, int(batch_segments))
        self.mwf = mwf
        self.spill_dir = spill_dir  # the Wiener filter's temporary files (default: the system's temp folder)
        self.quality = quality = quality or Quality()  # overlap / full band (docs/spec.md §12); default Spleeter-exact
        # makes a fastsep._cpu.Pipeline, one per song in flight, all sharing the network (None: the NumPy steps)
        self.make_native = None
        if not mwf and quality.native:
            extension = "average" if quality.full_band else cfg.mask_extension
            hop = segment_hop(cfg.T, quality.overlap) if quality.overlap else 0
            network = native_network(runner, cfg, self.batch_segments)

            def native():
                return native_module().Pipeline(
                    network, n_stems=cfg.n_stems, F=cfg.F, T=cfg.T, frame_length=cfg.frame_length,
                    frame_step=cfg.frame_step, separation_exponent=cfg.separation_exponent, mask_extension=extension,
                    segment_hop=hop, batch=self.batch_segments, threads=threads or 0)

            self.make_native = native
            self._idle = [self._make(native)]  # made now: a bad configuration fails at load time
            self._idle_lock = threading.Lock()

    @staticmethod
    def _make(native):
        try:
            return native()
        except Exception as e:
            raise native_errors(e) from None

    @contextlib.contextmanager
    def _native_pipeline(self):
        """An idle native pipeline for one song (files in flight each get their own)."""
        with self._idle_lock:
            p = self._idle.pop() if self._idle else None
        if p is None:
            p = self._make(self.make_native)
        try:
            yield p
        except Exception as e:
            raise native_errors(e) from None
        finally:
            p.reset()
            with self._idle_lock:
                self._idle.append(p)

    def separate(self, x: np.ndarray, progress: Progress | None = None) -> list[np.ndarray]:
        """x: (L, 2) float32 at the model's rate -> one (L, 2) float32 array per stem, in config order."""
        if self.make_native is not None:
            with self._native_pipeline() as p:
                return list(p.separate(x, progress))
        L = x.shape[0]
        out = [np.empty((L, 2), dtype=np.float32) for _ in range(self.cfg.n_stems)]
        at = 0
        for blocks in self.stream([x], progress, dsp.n_segments(L, self.cfg.T, self.cfg.frame_length,
                                                                 self.cfg.frame_step)):
            n = blocks[0].shape[0]
            for o, b in zip(out, blocks):
                o[at:at + n] = b
            at += n
        return out

    def stream(self, blocks: Iterable[np.ndarray], progress: Progress | None = None,
               total: int = 0) -> Iterator[list[np.ndarray]]:
        """(n, 2) float32 blocks at the model's rate -> per batch, one (m, 2) block of finished samples per stem.

        The stems' blocks add up to the input's length. `total` (segments, when known) is passed to `progress`."""
        if self.make_native is not None:
            yield from self._stream_native(blocks, progress, total)
            return
        q = self.quality
        # Full band alone, with ratio masks, is Spleeter's own "average" mask extension: it streams like the rest.
        full_band_only = q.full_band and q.overlap == 0 and q.extension == "average" and not self.mwf
        if not q.spleeter_exact and not full_band_only:
            yield self._beyond_spleeter(blocks, progress)
            return
        if self.mwf:
            yield from self._stream_mwf(blocks, progress, total)
            return
        cfg = dataclasses.replace(self.cfg, mask_extension="average") if full_band_only else self.cfg
        source = _Input(cfg)
        ola = _OverlapAdd(cfg)
        masked = None
        for s0, nseg, spectrum in source.batches(blocks, self.batch_segments):
            estimates = self.runner.run(dsp.magnitude_segments(spectrum, cfg.T, cfg.F))
            masks = dsp.ratio_masks(estimates, cfg.separation_exponent)  # (nseg, stems, 2, T, F)
            if masked is None or masked.shape != spectrum.shape:
                masked = np.empty_like(spectrum)
            stems = []
            for i in range(cfg.n_stems):
                dsp.masked_spectrum(spectrum, dsp.stem_mask_frames(masks, i), cfg.mask_extension, out=masked)
                stems.append(dsp.inverse_frames(masked, cfg.frame_length, cfg.frame_step))
            yield ola.add(stems, s0, nseg, source.length)
            if progress is not None:
                progress(s0 + nseg, max(total, s0 + nseg) if source.length is None else _segments(cfg, source))

    def _stream_native(self, blocks, progress, total) -> Iterator[list[np.ndarray]]:
        with self._native_pipeline() as p:
            for x in blocks:
                x = np.asarray(x, dtype=np.float32)
                if x.ndim != 2 or x.shape[1] != 2:
                    raise ValueError(f"blocks must be (n, 2) float32, got shape {x.shape}")
                p.push(x)
                if p.available:
                    yield list(p.pull())
                    if progress is not None:
                        progress(p.segments_done, max(total, p.segments_done))
            p.finish()
            yield list(p.pull())
            if progress is not None:
                progress(p.segments_done, p.segments_done)

    def _beyond_spleeter(self, blocks, progress) -> list[np.ndarray]:
        """Overlapping segments (or full band with the Wiener filter; fastsep.quality), on the whole song at once:
        their memory grows with the song as run()'s does (streaming them is not done yet)."""
        from .quality import separate

        x = np.concatenate([np.asarray(b, np.float32) for b in blocks])
        return separate(x, self.cfg, self.runner, self.quality, self.batch_segments, self.mwf, progress)

    def _stream_mwf(self, blocks, progress, total) -> Iterator[list[np.ndarray]]:
        """Multichannel Wiener filter in two passes: the filter needs sums over every frame before any output.
        Pass 1 runs the network and spills its estimates (stems x 2 x F floats per frame) and the input to
        unnamed temporary files; pass 2 reads them back batch by batch (docs/spec.md §6)."""
        cfg = self.cfg
        T, F = cfg.T, cfg.F
        spill = _Spill(self.spill_dir)
        try:
            stats = dsp.MwfStatistics(cfg.n_stems, F)
            first = _Input(cfg, keep=spill.keep_waveform)
            for s0, nseg, spectrum in first.batches(blocks, self.batch_segments):
                estimates = self.runner.run(dsp.magnitude_segments(spectrum, T, F))
                frames = np.ascontiguousarray(estimates.transpose(1, 2, 0, 3, 4)).reshape(cfg.n_stems, 2, nseg * T, F)
                stats.add(spectrum, frames)
                spill.estimates.write(frames.tobytes())
                if progress is not None:
                    progress(s0 + nseg, 2 * max(total, s0 + nseg))  # the second pass is the other half
            total = _segments(cfg, first)
            scale = stats.scale
            R = stats.spatial_covariances(scale)
            spill.estimates.seek(0)
            second = _Input(cfg)
            ola = _OverlapAdd(cfg)
            for s0, nseg, spectrum in second.batches(spill.waveform_blocks(), self.batch_segments):
                frames = spill.read_estimates((cfg.n_stems, 2, nseg * T, F))
                filtered = dsp.mwf_filter(spectrum[..., :F], frames, R, scale)
                stems = []
                for i in range(cfg.n_stems):
                    stem = np.zeros_like(spectrum)  # bins from F up stay 0, as in Spleeter's zero-extended v
                    stem[..., :F] = filtered[i]
                    stems.append(dsp.inverse_frames(stem, cfg.frame_length, cfg.frame_step))
                yield ola.add(stems, s0, nseg, first.length)
                if progress is not None:
                    progress(total + s0 + nseg, 2 * total)
        finally:
            spill.close()


def _segments(cfg: ModelConfig, source: _Input) -> int:
    return dsp.n_segments(source.length, cfg.T, cfg.frame_length, cfg.frame_step)


def stream_windows(separate: Callable[[np.ndarray], np.ndarray], cfg: ModelConfig, blocks: Iterable[np.ndarray],
                   window_segments: int = 16) -> Iterator[list[np.ndarray]]:
    """Stream through a whole-waveform pipeline (the GPU Pipeline.separate: (L, 2) -> (stems, L, 2)) by calling it
    on overlapping windows of about `window_segments` segments and keeping only the samples it computes exactly.

    A window starting at original sample jTH (T*H samples per segment) sees zeros before it, so its segment j is
    a warm-up whose output is dropped, and its last, partial segment lacks the samples after the window: the
    samples from (j+1)TH - H up to N before the last full segment's end are exact. Each window costs two segments
    more than it delivers; memory is the window's, not the song's."""
    W = max(int(window_segments), 3)  # a window must move the next one's start past its own
    TH, N, H = cfg.T * cfg.frame_step, cfg.frame_length, cfg.frame_step
    held: list[np.ndarray] = []  # input from original sample j*TH on, joined only when a window runs
    have = 0
    emitted = 0
    j = 0  # the window's first segment (a warm-up segment unless 0)

    def window(end: int, exact_end: int) -> list[np.ndarray]:
        nonlocal emitted, held
        a = j * TH
        x = np.concatenate(held) if len(held) > 1 else held[0]
        held = [x]
        stems = separate(np.ascontiguousarray(x[:end - a]))
        out = [np.ascontiguousarray(s[emitted - a:exact_end - a]) for s in stems]
        emitted = exact_end
        return out

    for x in blocks:
        held.append(np.asarray(x, np.float32))
        have += held[-1].shape[0]
        while True:
            last = (j + 1 if j else 0) + W - 1  # the window's last exact segment
            end = (last + 1) * TH - H  # its last frame's samples are in
            if j * TH + have < end:
                break
            yield window(end, (last + 1) * TH - N)
            drop = (last - 1 - j) * TH
            j = last - 1
            held, have = [held[0][drop:]], have - drop
    length = j * TH + have
    if length > emitted:
        yield window(length, length)
