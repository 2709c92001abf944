"""NumPy reference of the signal processing around the U-Net (docs/spec.md §2-§3, §6-§7).

Layout conventions, shared with the network and the native pipeline:
  waveform    (L, 2) float32, original sample index
  spectrum    (2, frames, bins) complex64; frame k covers original samples [k*H - N, k*H)
  magnitudes  (segments, 2, T, F) float32 (NCHW: channel = stereo, H = time, W = frequency)
  estimates   (segments, stems, 2, T, F) float32, the network's output
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

EPSILON = 1e-10  # spleeter.utils.tensor EPSILON in the ratio mask
WINDOW_COMPENSATION = 2.0 / 3.0  # periodic Hann at 75 % overlap: sum of w^2 = 1.5


def hann(n: int) -> np.ndarray:
    """Periodic Hann window, as tf.signal.hann_window(periodic=True)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def to_stereo(x: np.ndarray) -> np.ndarray:
    """Spleeter's to_stereo: mono is duplicated, channels past the second are dropped."""
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InputError(f"waveform must be (samples,) or (samples, channels), got shape {x.shape}")
    if x.shape[1] == 0:
        raise InputError("waveform has no channels")
    if x.shape[1] == 1:
        return np.repeat(x, 2, axis=1)
    return x[:, :2]


def n_frames(n_samples: int, frame_length: int = 4096, frame_step: int = 1024) -> int:
    """STFT frames after prepending frame_length zeros, with pad_end: ceil((L + N) / H)."""
    return -(-(n_samples + frame_length) // frame_step)


def n_segments(n_samples: int, T: int = 512, frame_length: int = 4096, frame_step: int = 1024) -> int:
    return -(-n_frames(n_samples, frame_length, frame_step) // T)


def stft_frames(x: np.ndarray, first: int, count: int, frame_length: int = 4096, frame_step: int = 1024,
                workers: int = -1) -> np.ndarray:
    """STFT frames [first, first + count) of the stereo waveform x (L, 2): (2, count, N/2+1) complex64.

    Frame k is rfft(w * x[kH - N : kH]) with x taken as zero outside [0, L); this is Spleeter's STFT of the
    signal with N zeros prepended and pad_end, and frames past the end are the zero frames of pad_and_partition.
    """
    N, H = frame_length, frame_step
    start = first * H - N
    stop = (first + count - 1) * H
    chunk = np.zeros((2, stop - start), dtype=np.float32)
    lo, hi = max(start, 0), min(stop, x.shape[0])
    if hi > lo:
        chunk[:, lo - start:hi - start] = x[lo:hi].T
    frames = np.lib.stride_tricks.sliding_window_view(chunk, N, axis=1)[:, ::H]
    import scipy.fft  # here, not at the top: the native pipeline never needs it, and it costs 0.1-0.2 s

    return scipy.fft.rfft(frames * hann(N), axis=-1, workers=workers).astype(np.complex64, copy=False)


def magnitude_segments(spectrum: np.ndarray, T: int, F: int) -> np.ndarray:
    """(2, segments*T, bins) complex -> (segments, 2, T, F) float32 magnitudes, the network's input."""
    c, frames, _ = spectrum.shape
    mag = np.abs(spectrum[:, :, :F])
    return np.ascontiguousarray(mag.reshape(c, frames // T, T, F).transpose(1, 0, 2, 3))


def ratio_masks(estimates: np.ndarray, separation_exponent: float = 2.0) -> np.ndarray:
    """M_i = (Y_i^p + eps/n) / (sum_j Y_j^p + eps) over the stems axis (axis 1)."""
    n = estimates.shape[1]
    p = np.float32(separation_exponent)
    power = estimates ** 2 if p == 2 else estimates ** p
    total = power.sum(axis=1, keepdims=True) + np.float32(EPSILON)
    return (power + np.float32(EPSILON / n)) / total


def extend_masks(masks: np.ndarray, bins: int, mask_extension: str = "zeros") -> np.ndarray:
    """Extend (..., F) masks to (..., bins): zeros, or the mean over the F bins ("average")."""
    F = masks.shape[-1]
    out = np.zeros(masks.shape[:-1] + (bins,), dtype=np.float32)
    out[..., :F] = masks
    if mask_extension == "average":
        out[..., F:] = masks.mean(axis=-1, keepdims=True)
    return out


def stem_mask_frames(masks: np.ndarray, stem: int) -> np.ndarray:
    """One stem's masks (segments, stems, 2, T, F) -> (2, segments*T, F), the spectrum's frame layout."""
    s, _, c, t, f = masks.shape
    return masks[:, stem].transpose(1, 0, 2, 3).reshape(c, s * t, f)


def masked_spectrum(spectrum: np.ndarray, mask: np.ndarray, mask_extension: str = "zeros",
                    out: np.ndarray | None = None) -> np.ndarray:
    """Extended mask (2, frames, F) times the mixture spectrum (2, frames, bins): only magnitudes change.

    Equal to extend_masks(mask) * spectrum, without multiplying the zero-extended bins. `out` may be reused.
    """
    F = mask.shape[-1]
    if out is None:
        out = np.empty_like(spectrum)
    np.multiply(spectrum[..., :F], mask, out=out[..., :F])
    if mask_extension == "average":
        np.multiply(spectrum[..., F:], mask.mean(axis=-1, keepdims=True), out=out[..., F:])
    else:
        out[..., F:] = 0
    return out


def inverse_frames(spectrum: np.ndarray, frame_length: int = 4096, frame_step: int = 1024,
                   workers: int = -1) -> np.ndarray:
    """Inverse STFT of consecutive frames (2, count, bins) -> (2, (count-1)*H + N) float32.

    irfft, periodic Hann, overlap-add, x2/3: tf.signal.inverse_stft with Spleeter's compensation. If the first
    frame is k, the result starts at original sample k*H - N.
    """
    N, H = frame_length, frame_step
    count = spectrum.shape[1]
    import scipy.fft

    frames = scipy.fft.irfft(spectrum, n=N, axis=-1, workers=workers).astype(np.float32, copy=False)
    frames *= hann(N) * np.float32(WINDOW_COMPENSATION)
    hops = N // H
    # Block b of the output (H samples) sums block j of frame b - j, for j < N/H.
    acc = np.zeros((2, count + hops - 1, H), dtype=np.float32)
    blocks = frames.reshape(2, count, hops, H)
    for j in range(hops):
        acc[:, j:j + count] += blocks[:, :, j]
    return acc.reshape(2, -1)


def overlap_add(out: np.ndarray, spectrum: np.ndarray, first: int, frame_length: int = 4096,
                frame_step: int = 1024, workers: int = -1) -> None:
    """Add the inverse STFT of frames [first, first + count) of spectrum (2, count, bins) into out (L, 2).

    Frame k lands on original samples [kH - N, kH); whatever falls outside [0, L) is the crop of docs/spec.md §7.3.
    """
    acc = inverse_frames(spectrum, frame_length, frame_step, workers)
    add_block(out, acc, first * frame_step - frame_length)


def add_block(out: np.ndarray, block: np.ndarray, start: int) -> None:
    """out[start : start + n] += block.T for a channel-first block (2, n), clipped to out's (L, 2) range."""
    lo, hi = max(start, 0), min(start + block.shape[1], out.shape[0])
    if hi > lo:
        out[lo:hi] += block[:, lo - start:hi - start].T


def separate_reference(x: np.ndarray, network, cfg) -> dict[str, np.ndarray]:
    """Whole-song reference of the five steps, with `network(magnitudes) -> estimates` (tests use it)."""
    L = x.shape[0]
    nseg = n_segments(L, cfg.T, cfg.frame_length, cfg.frame_step)
    spec = stft_frames(x, 0, nseg * cfg.T, cfg.frame_length, cfg.frame_step)
    masks = extend_masks(ratio_masks(network(magnitude_segments(spec, cfg.T, cfg.F)), cfg.separation_exponent),
                         cfg.bins, cfg.mask_extension)
    out = {}
    for i, name in enumerate(cfg.instruments):
        y = np.zeros((L, 2), dtype=np.float32)
        overlap_add(y, stem_mask_frames(masks, i) * spec, 0, cfg.frame_length, cfg.frame_step)
        out[name] = y
    return out


# --- Multichannel Wiener filter (docs/spec.md §8: norbert.wiener(v, x), 1 EM iteration, soft-mask start) ---
# Spleeter runs it on the whole song at once; here it takes two passes over the segments. The first sums, per
# stem and bin, the spatial covariance of the soft-masked estimates and their power (and finds max|x|); the second
# builds each frame's Wiener filter from those sums. Bins from F up have v = 0, hence estimates of exactly 0.

MWF_EPS = float(np.finfo(np.float32).eps)  # norbert's default for complex64 input


def mwf_initial_estimates(spectrum_f: np.ndarray, estimates_frames: np.ndarray) -> np.ndarray:
    """Soft-mask start: y_j = v_j / (eps + sum_k v_k) * x, for x (2, frames, F), v (stems, 2, frames, F)."""
    total = estimates_frames.sum(axis=0) + np.float32(MWF_EPS)
    return (estimates_frames / total) * spectrum_f[None]


class MwfStatistics:
    """Sums over the song's frames that norbert's EM step needs (pass 1)."""

    def __init__(self, n_stems: int, F: int):
        self.covariance = np.zeros((n_stems, F, 2, 2), np.complex128)  # sum_t y_j y_j^H per bin
        self.power = np.zeros((n_stems, F), np.float64)  # sum_t v_j, v_j = mean over channels of |y_j|^2
        self.max_abs = 0.0  # max |x| over every bin and frame of the song

    def add(self, spectrum: np.ndarray, estimates_frames: np.ndarray) -> None:
        F = estimates_frames.shape[-1]
        self.max_abs = max(self.max_abs, float(np.abs(spectrum).max(initial=0.0)))
        y = mwf_initial_estimates(spectrum[..., :F], estimates_frames)  # (stems, 2, frames, F)
        self.covariance += np.einsum("sctf,sdtf->sfcd", y, y.conj())
        self.power += (np.abs(y) ** 2).mean(axis=1).sum(axis=1)

    def spatial_covariances(self, scale: float) -> np.ndarray:
        """R_j per bin for estimates divided by `scale` (norbert's max(1, max|x|/10)): (stems, F, 2, 2)."""
        s2 = scale * scale
        return (self.covariance / s2) / (MWF_EPS + self.power / s2)[..., None, None]

    @property
    def scale(self) -> float:
        return max(1.0, self.max_abs / 10.0)


def mwf_filter(spectrum_f: np.ndarray, estimates_frames: np.ndarray, R: np.ndarray, scale: float) -> np.ndarray:
    """Pass 2: y_j = v_j R_j C_xx^-1 x per frame and bin, C_xx = sum_j v_j R_j + sqrt(eps) I.

    spectrum_f (2, frames, F) complex, estimates_frames (stems, 2, frames, F), R (stems, F, 2, 2) -> (stems, 2,
    frames, F) complex64 in the mixture's scale.
    """
    x = spectrum_f / np.float32(scale)
    y = mwf_initial_estimates(x, estimates_frames)
    v = (np.abs(y) ** 2).mean(axis=1)  # (stems, frames, F)
    C = np.einsum("stf,sfcd->tfcd", v, R)
    C[..., 0, 0] += np.sqrt(MWF_EPS)
    C[..., 1, 1] += np.sqrt(MWF_EPS)
    det = C[..., 0, 0] * C[..., 1, 1] - C[..., 0, 1] * C[..., 1, 0]
    inv = np.empty_like(C)
    inv[..., 0, 0], inv[..., 1, 1] = C[..., 1, 1] / det, C[..., 0, 0] / det
    inv[..., 0, 1], inv[..., 1, 0] = -C[..., 0, 1] / det, -C[..., 1, 0] / det
    xt = x.transpose(1, 2, 0)  # (frames, F, 2)
    out = np.empty(estimates_frames.shape, np.complex64)
    for j in range(R.shape[0]):
        W = v[j][..., None, None] * np.einsum("fce,tfed->tfcd", R[j], inv)
        out[j] = np.einsum("tfcd,tfd->ctf", W, xt) * np.float32(scale)
    return out
