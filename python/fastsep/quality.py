"""Beyond Spleeter-exact output (docs/spec.md §12): overlapping segments cross-faded per frame, full-band masks.

Spleeter cuts the STFT into non-overlapping T-frame segments (§3.1); the U-Net sees zero padding at each segment
edge, so its estimates change abruptly there. With `overlap`, segments start every round(T * (1 - overlap))
frames (still from frame 0) and each frame's network estimate is the weighted mean of the estimates of the segments
that hold it, each weighted by a raised-cosine fade that is small near that segment's edges. With `full_band`,
bins from F up get the mean of the frame's F masks instead of 0 (Spleeter's "average" extension, §6.2, the best of
the measured choices), so the stems sum to the mix.

`stem_blocks` streams the output as overlap-add blocks; `separate` adds them into whole stems.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from . import dsp
from .errors import InputError
from .models.config import ModelConfig
from .quality_options import Quality

LAST_BINS = 16  # extension "last_bins": the mean of the network's last 16 bins (344 Hz for 2stems)


# ----------------------------------------------------------------------------------------------- the schedule

def segment_hop(T: int, overlap: float) -> int:
    """Frames between segment starts: round(T * (1 - overlap)), at least 1."""
    return max(1, int(round(T * (1.0 - overlap))))


def segment_starts(n_frames: int, T: int, hop: int) -> np.ndarray:
    """First frame of each segment: 0, hop, 2 hop, ... until a segment reaches frame n_frames - 1."""
    count = 1 if n_frames <= T else -(-(n_frames - T) // hop) + 1
    return np.arange(count, dtype=np.int64) * hop


def fade(T: int, hop: int, shape: str = "cosine") -> np.ndarray:
    """(T,) float64 weights of one segment: ramps of T - hop frames up from each edge, 1 between.

    A rising ramp r(j) and the previous segment's falling ramp at the same frame are r(u) and r(1 - u), with
    r(u) + r(1 - u) = 1 for both shapes, so for overlap <= 0.5 the weights of a frame sum to 1 before any
    normalisation; above 0.5 the ramps of one segment cross and `Schedule.weights` normalises.
    """
    ramp = T - hop
    if ramp == 0:
        return np.ones(T)
    u = np.minimum((np.arange(T) + 0.5) / ramp, 1.0)
    rise = u if shape == "linear" else np.sin(0.5 * np.pi * u) ** 2
    return np.minimum(rise, rise[::-1])


class Schedule:
    """The overlapped segments of one song and each one's share of the frames it holds."""

    def __init__(self, n_frames: int, T: int, overlap: float, shape: str = "cosine"):
        self.T = T
        self.hop = segment_hop(T, overlap)
        self.starts = segment_starts(n_frames, T, self.hop)
        self.window = fade(T, self.hop, shape)

    def __len__(self) -> int:
        return len(self.starts)

    def weights(self, s: int) -> np.ndarray:
        """(T,) float32 weights of segment s's frames: its window over the sum of the windows of every segment at
        each frame. Every frame is held by at least one segment, so each frame's weights sum to 1."""
        T, a = self.T, self.starts[s]
        reach = -(-T // self.hop)
        total = np.zeros(T)
        for other in range(max(0, s - reach), min(len(self), s + reach + 1)):
            shift = int(self.starts[other] - a)
            lo, hi = max(0, shift), min(T, T + shift)
            if hi > lo:
                total[lo:hi] += self.window[lo - shift:hi - shift]
        return (self.window / total).astype(np.float32)


# ------------------------------------------------------------------------------------------------- full band

def upper_band_mask(mask: np.ndarray, extension: str = "average") -> np.ndarray:
    """The mask of every bin from F up, (..., F) -> (..., 1): a mean of the network's masks per frame.

    Any mean of ratio masks still sums to 1 over the stems, so the stems sum to the mix over the whole band.
    """
    F = mask.shape[-1]
    if extension == "average":
        return mask.mean(axis=-1, keepdims=True)
    first = F // 2 if extension == "top_octave" else F - LAST_BINS
    return mask[..., first:].mean(axis=-1, keepdims=True)


def full_band_spectrum(spectrum: np.ndarray, mask: np.ndarray, extension: str = "average",
                       out: np.ndarray | None = None) -> np.ndarray:
    """Mask (2, frames, F) times the mixture spectrum (2, frames, bins), bins from F up by `upper_band_mask`."""
    F = mask.shape[-1]
    out = dsp.masked_spectrum(spectrum, mask, "zeros", out=out)
    np.multiply(spectrum[..., F:], upper_band_mask(mask, extension), out=out[..., F:])
    return out


# --------------------------------------------------------------------------------------------- the pipeline

def frame_estimates(x: np.ndarray, cfg: ModelConfig, runner, quality: Quality,
                    batch_segments: int = 1) -> Iterator[tuple[int, np.ndarray, np.ndarray, int, int]]:
    """Per-frame network estimates (or masks) of the overlapped schedule, streamed in frame order.

    Yields (first frame, spectrum (2, n, bins), blended (stems, 2, n, F), segments done, segments in all). The
    blend is of the estimates, or of their ratio masks when quality.blend == "masks". Frames are yielded once no
    later segment holds them; the weighted sums of the frames the next batch still adds to are carried over.
    """
    T, F, N, H = cfg.T, cfg.F, cfg.frame_length, cfg.frame_step
    schedule = Schedule(dsp.n_frames(x.shape[0], N, H), T, quality.overlap, quality.fade)
    starts, total = schedule.starts, len(schedule)
    tail = np.zeros((cfg.n_stems, 2, 0, F), np.float32)
    for s0 in range(0, total, max(1, batch_segments)):
        batch = starts[s0:s0 + batch_segments]
        first, span = int(batch[0]), int(batch[-1] - batch[0]) + T
        spectrum = dsp.stft_frames(x, first, span, N, H)
        mags = np.abs(spectrum[:, :, :F])
        net_in = np.ascontiguousarray(np.stack([mags[:, a - first:a - first + T] for a in batch]))
        estimates = runner.run(net_in)  # (segments, stems, 2, T, F)
        if quality.blend == "masks":
            estimates = dsp.ratio_masks(estimates, cfg.separation_exponent)
        acc = np.zeros((cfg.n_stems, 2, span, F), np.float32)
        acc[:, :, :tail.shape[2]] = tail
        for k, a in enumerate(batch):
            w = schedule.weights(s0 + k)
            acc[:, :, a - first:a - first + T] += estimates[k] * w[:, None]
        done = s0 + len(batch)
        n_final = span if done == total else int(starts[done]) - first
        tail = acc[:, :, n_final:]
        yield first, spectrum[:, :n_final], acc[:, :, :n_final], done, total


def stem_blocks(x: np.ndarray, cfg: ModelConfig, runner, quality: Quality, batch_segments: int = 1,
                mwf: bool = False) -> Iterator[tuple[int, list[np.ndarray], int, int]]:
    """The stems as overlap-add blocks: (first original sample, [(2, n) per stem], work done, work in all).

    Blocks of consecutive chunks overlap by N - H samples (docs/spec.md §7.4): add them, do not overwrite.
    """
    if mwf:
        yield from _mwf_blocks(x, cfg, runner, quality, batch_segments)
        return
    N, H = cfg.frame_length, cfg.frame_step
    masked = None
    for first, spectrum, blended, done, total in frame_estimates(x, cfg, runner, quality, batch_segments):
        masks = blended if quality.blend == "masks" else dsp.ratio_masks(blended[None], cfg.separation_exponent)[0]
        blocks = []
        for mask in masks:
            if masked is None or masked.shape != spectrum.shape:
                masked = np.empty_like(spectrum)
            if quality.full_band:
                full_band_spectrum(spectrum, mask, quality.extension, out=masked)
            else:
                dsp.masked_spectrum(spectrum, mask, cfg.mask_extension, out=masked)
            blocks.append(dsp.inverse_frames(masked, N, H))
        yield first * H - N, blocks, done, total


def _mwf_blocks(x, cfg: ModelConfig, runner, quality: Quality, batch_segments: int):
    """docs/spec.md §8.2's two passes over the blended per-frame estimates; with full_band, bins from F up get the
    ratio masks' upper-band mask (the filter leaves them 0)."""
    if quality.blend == "masks":
        raise InputError("the multichannel Wiener filter needs blended estimates, not masks")
    N, H, F = cfg.frame_length, cfg.frame_step, cfg.F
    stats = dsp.MwfStatistics(cfg.n_stems, F)
    kept = []
    for first, spectrum, blended, done, total in frame_estimates(x, cfg, runner, quality, batch_segments):
        stats.add(spectrum, blended)
        kept.append((first, blended.copy(), done))  # without the carried frames' buffer
        yield first * H - N, [], done, 2 * total
    scale = stats.scale
    R = stats.spatial_covariances(scale)
    for k, (first, estimates, done) in enumerate(kept):
        kept[k] = None
        spectrum = dsp.stft_frames(x, first, estimates.shape[2], N, H)
        filtered = dsp.mwf_filter(spectrum[..., :F], estimates, R, scale)
        masks = dsp.ratio_masks(estimates[None], cfg.separation_exponent)[0] if quality.full_band else None
        blocks = []
        for i in range(cfg.n_stems):
            stem = np.zeros_like(spectrum)
            stem[..., :F] = filtered[i]
            if masks is not None:
                stem[..., F:] = spectrum[..., F:] * upper_band_mask(masks[i], quality.extension)
            blocks.append(dsp.inverse_frames(stem, N, H))
        yield first * H - N, blocks, total + done, 2 * total


def separate(x: np.ndarray, cfg: ModelConfig, runner, quality: Quality, batch_segments: int = 1,
             mwf: bool = False, progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """x: (L, 2) float32 at the model's rate -> one (L, 2) float32 array per stem, in config order."""
    L = x.shape[0]
    out = [np.zeros((L, 2), dtype=np.float32) for _ in range(cfg.n_stems)]
    for start, blocks, done, total in stem_blocks(x, cfg, runner, quality, batch_segments, mwf):
        for y, block in zip(out, blocks):
            dsp.add_block(y, block, start)
        if progress is not None:
            progress(done, total)
    return out
