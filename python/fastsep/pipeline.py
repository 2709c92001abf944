"""The host pipeline: NumPy DSP around any network runner, streaming a bounded batch of segments at a time."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from . import dsp
from .models.config import ModelConfig
from .quality import separate as separate_beyond_spleeter
from .quality_options import Quality


class Runner(Protocol):
    def run(self, magnitudes: np.ndarray) -> np.ndarray: ...


class HostPipeline:
    """Steps 1, 3, 4, 5 of DESIGN.md on the CPU; step 2 by `runner`. Memory is flat in the song's length."""

    def __init__(self, cfg: ModelConfig, runner: Runner, batch_segments: int = 1, mwf: bool = False,
                 quality: Quality | None = None):
        self.cfg = cfg
        self.runner = runner
        self.batch_segments = max(1, int(batch_segments))
        self.mwf = mwf
        self.quality = quality or Quality()  # overlap / full band (docs/spec.md §12); default Spleeter-exact

    def separate(self, x: np.ndarray, progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
        """x: (L, 2) float32 at the model's rate -> one (L, 2) float32 array per stem, in config order."""
        cfg = self.cfg
        L = x.shape[0]
        T, N, H = cfg.T, cfg.frame_length, cfg.frame_step
        total = dsp.n_segments(L, T, N, H)
        if not self.quality.spleeter_exact:
            return separate_beyond_spleeter(x, cfg, self.runner, self.quality, self.batch_segments, self.mwf,
                                            progress)
        if self.mwf:
            return self._separate_mwf(x, total, progress)
        out = [np.zeros((L, 2), dtype=np.float32) for _ in range(cfg.n_stems)]
        masked = None
        for s0, nseg, spectrum, estimates in self._chunks(x, total):
            masks = dsp.ratio_masks(estimates, cfg.separation_exponent)  # (nseg, stems, 2, T, F)
            if masked is None or masked.shape != spectrum.shape:
                masked = np.empty_like(spectrum)
            for i in range(cfg.n_stems):
                dsp.masked_spectrum(spectrum, dsp.stem_mask_frames(masks, i), cfg.mask_extension, out=masked)
                # Chunks overlap by N - H samples: adding into the song-long output carries the overlap-add.
                dsp.add_block(out[i], dsp.inverse_frames(masked, N, H), s0 * T * H - N)
            if progress is not None:
                progress(s0 + nseg, total)
        return out

    def _chunks(self, x: np.ndarray, total: int):
        """(first segment, segments, spectrum (2, frames, bins), network estimates) for each batch of segments."""
        cfg = self.cfg
        for s0 in range(0, total, self.batch_segments):
            nseg = min(self.batch_segments, total - s0)
            spectrum = dsp.stft_frames(x, s0 * cfg.T, nseg * cfg.T, cfg.frame_length, cfg.frame_step)
            yield s0, nseg, spectrum, self.runner.run(dsp.magnitude_segments(spectrum, cfg.T, cfg.F))

    def _separate_mwf(self, x: np.ndarray, total: int, progress) -> list[np.ndarray]:
        """Multichannel Wiener filter: the network's estimates of the whole song are kept (stems x 2 x F floats per
        frame, as Spleeter keeps far more), since the filter needs sums over every frame before any output."""
        cfg = self.cfg
        L = x.shape[0]
        T, N, H = cfg.T, cfg.frame_length, cfg.frame_step
        stats = dsp.MwfStatistics(cfg.n_stems, cfg.F)
        kept = []
        for s0, nseg, spectrum, estimates in self._chunks(x, total):
            frames = np.ascontiguousarray(estimates.transpose(1, 2, 0, 3, 4)).reshape(cfg.n_stems, 2, nseg * T, cfg.F)
            stats.add(spectrum, frames)
            kept.append(frames)
            if progress is not None:
                progress(s0 + nseg, 2 * total)  # the second pass is the other half of the work
        scale = stats.scale
        R = stats.spatial_covariances(scale)
        out = [np.zeros((L, 2), dtype=np.float32) for _ in range(cfg.n_stems)]
        for k, s0 in enumerate(range(0, total, self.batch_segments)):
            frames = kept[k]
            kept[k] = None
            spectrum = dsp.stft_frames(x, s0 * T, frames.shape[2], N, H)
            filtered = dsp.mwf_filter(spectrum[..., :cfg.F], frames, R, scale)
            for i in range(cfg.n_stems):
                stem = np.zeros_like(spectrum)  # bins from F up stay 0, as in Spleeter's zero-extended v
                stem[..., :cfg.F] = filtered[i]
                dsp.add_block(out[i], dsp.inverse_frames(stem, N, H), s0 * T * H - N)
            if progress is not None:
                progress(total + s0 + frames.shape[2] // T, 2 * total)
        return out
