"""Host build of the GPU DSP math (fastsep._host_dsp, csrc/include/fastsep/dsp_math.cuh) against dsp.py.

Runs without a GPU: every kernel's element function is called from a plain C++ loop; the FFTs between the steps
are done here with scipy, as dsp.py does. The streaming loop below mirrors Pipeline::separate_locked
(csrc/src/pipeline.cpp) step for step, so chunking and the carried overlap-add tail are checked on CPU.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.fft

from fastsep import dsp

hd = pytest.importorskip("fastsep._host_dsp", reason="fastsep._host_dsp not built (pip install the package)")


def geometry(N=4096, H=1024, T=512, F=1024, n_stems=2, p=2.0, ext="zeros"):
    return types.SimpleNamespace(
        frame_length=N, frame_step=H, T=T, F=F, bins=N // 2 + 1, separation_exponent=p, mask_extension=ext,
        instruments=tuple(f"stem{i}" for i in range(n_stems)), n_stems=n_stems,
    )


SPLEETER = geometry()
SMALL = geometry(N=64, H=16, T=8, F=16)  # same structure (N/H = 4), tiny: many segments stay cheap


def known_params(n_stems):
    a = [0.7 + 0.45 * i for i in range(n_stems)]
    b = [0.3 - 0.2 * i for i in range(n_stems)]
    return a, b


def numpy_known_network(a, b):
    a32 = np.asarray(a, np.float32)[None, :, None, None, None]
    b32 = np.asarray(b, np.float32)[None, :, None, None, None]

    def net(mag):  # (segments, 2, T, F) -> (segments, S, 2, T, F)
        x = mag[:, None]
        return (x / (np.float32(1) + np.exp(-(a32 * x + b32)))).astype(np.float32)

    return net


def to_frames(masks):
    """(segments, stems, 2, T, bins) -> (stems, 2, segments*T, bins), the layout of the pipeline's stems buffer."""
    s, n, c, t, b = masks.shape
    return masks.transpose(1, 2, 0, 3, 4).reshape(n, c, s * t, b)


def waveform(L, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(L, 2)).astype(np.float32)


def host_separate(x, cfg, a, b, chunk_segments, staged=True):
    """Pipeline::separate_locked on the host: same chunking, same buffers, numpy FFTs in between."""
    N, H, T, F = cfg.frame_length, cfg.frame_step, cfg.T, cfg.F
    K = N // 2 + 1
    R = K + K % 2  # complex slots per row, as the pipeline pads them (16-byte aligned rows)
    row_stride = 2 * R
    S = len(a)
    L = x.shape[0]
    B = chunk_segments
    nseg = hd.n_segments(L, T, N, H)
    out = np.full((S, L, 2), np.nan, np.float32)
    tail = np.zeros((S, 2, N - H), np.float32)
    for seg0 in range(0, nseg, B):
        b_ = min(B, nseg - seg0)
        count, first = b_ * T, seg0 * T
        t0 = first * H - N
        lo, hi = max(t0, 0), min((first + count - 1) * H, L)  # the staged chunk of the waveform
        staged_x = x[lo:hi] if hi > lo else np.zeros((0, 2), np.float32)
        frames = hd.frame_window(staged_x, first, count, N, H, row_stride, x_origin=lo)
        spec = np.full((2, count, R), np.nan, np.complex64)  # the in-place R2C row layout; NaN: never read
        spec[..., :K] = scipy.fft.rfft(frames[..., :N], axis=-1)
        mag = hd.magnitude(spec, T, F)
        est = hd.known_network(mag, a, b)
        stems = hd.apply_masks(est, spec, cfg.separation_exponent, cfg.mask_extension, bins=K)
        raw = scipy.fft.irfft(stems[..., :K], n=N, axis=-1, norm="forward")  # unnormalised, as cuFFT's C2R
        padded = np.full(raw.shape[:-1] + (row_stride,), np.nan, np.float32)  # the in-place C2R row layout
        padded[..., :N] = raw
        if staged:
            chunk_out = np.zeros((S, B * T * H, 2), np.float32)
            tail = hd.overlap_add(padded, first, N, H, tail, chunk_out, t0, L)
            t_lo, t_hi = max(t0, 0), min(t0 + count * H, L)
            if t_hi > t_lo:
                out[:, t_lo:t_hi] = chunk_out[:, t_lo - t0:t_hi - t0]
        else:
            tail = hd.overlap_add(padded, first, N, H, tail, out, 0, L)
    return out


def reference(x, cfg, a, b):
    ref = dsp.separate_reference(x, numpy_known_network(a, b), cfg)
    return np.stack([ref[name] for name in cfg.instruments])


# ---------------------------------------------------------------------------------------------- single steps

@pytest.mark.parametrize("N", [64, 4096])
def test_windows(N):
    np.testing.assert_array_equal(hd.analysis_window(N), dsp.hann(N))
    np.testing.assert_array_equal(hd.synthesis_window(N), dsp.hann(N) * np.float32(dsp.WINDOW_COMPENSATION))


@pytest.mark.parametrize("L", [1, 100, 4095, 4096, 4097, 10_000, 520_192, 520_193])
def test_frame_counts(L):
    assert hd.n_frames(L) == dsp.n_frames(L)
    assert hd.n_segments(L) == dsp.n_segments(L)


@pytest.mark.parametrize("cfg", [SPLEETER, SMALL], ids=["spleeter", "small"])
@pytest.mark.parametrize("L,first,count", [(1, 0, 8), (50, 0, 16), (5000, 0, 24), (5000, 3, 8), (100_000, 8, 16),
                                           (100_000, 90, 24), (100_000, 200, 8)])
def test_frames_match_stft(cfg, L, first, count):
    N, H = cfg.frame_length, cfg.frame_step
    x = waveform(L, seed=L + first)
    frames = hd.frame_window(x, first, count, N, H, 2 * (N // 2 + 1))
    ref = dsp.stft_frames(x, first, count, N, H)
    np.testing.assert_array_equal(scipy.fft.rfft(frames[..., :N], axis=-1), ref)
    # the staged form the pipeline uses for host input: only [lo, hi) of the waveform is present
    lo, hi = max(first * H - N, 0), min((first + count - 1) * H, L)
    if hi > lo:
        staged = hd.frame_window(x[lo:hi], first, count, N, H, 2 * (N // 2 + 1), x_origin=lo)
        np.testing.assert_array_equal(staged[..., :N], frames[..., :N])


@pytest.mark.parametrize("cfg", [SPLEETER, SMALL, geometry(N=64, H=16, T=8, F=33)], ids=["spleeter", "small", "allbins"])
def test_magnitude_layout(cfg):
    N, H, T = cfg.frame_length, cfg.frame_step, cfg.T
    x = waveform(3 * T * H, seed=1)
    spec = dsp.stft_frames(x, 0, 3 * T, N, H)
    np.testing.assert_allclose(hd.magnitude(spec, T, cfg.F), dsp.magnitude_segments(spec, T, cfg.F), rtol=1e-6,
                               atol=0)


@pytest.mark.parametrize("ext", ["zeros", "average"])
@pytest.mark.parametrize("p", [2.0, 1.0, 1.5])
@pytest.mark.parametrize("n_stems", [1, 2, 4, 5])
def test_masks_and_masked_spectra(ext, p, n_stems):
    cfg = geometry(N=256, H=64, T=16, F=64, n_stems=n_stems, p=p, ext=ext)
    rng = np.random.default_rng(n_stems)
    segs = 3
    count = segs * cfg.T
    est = rng.uniform(0, 2, size=(segs, n_stems, 2, cfg.T, cfg.F)).astype(np.float32)
    est[0, :, :, :3] = 0  # silent bins: 1/n each
    spec = (rng.normal(size=(2, count, cfg.bins)) + 1j * rng.normal(size=(2, count, cfg.bins))).astype(np.complex64)
    masks = dsp.ratio_masks(est, p)
    ref = to_frames(dsp.extend_masks(masks, cfg.bins, ext)) * spec
    got = hd.apply_masks(est, spec, p, ext)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7)
    padded = np.full((2, count, cfg.bins + 3), np.nan, np.complex64)  # rows longer than the bins
    padded[..., :cfg.bins] = spec
    got = hd.apply_masks(est, padded, p, ext, bins=cfg.bins)
    np.testing.assert_allclose(got[..., :cfg.bins], ref, rtol=2e-6, atol=1e-7)
    if ext == "average":
        means = hd.mask_means(est, spec, p)  # (S, 2, frames)
        ref_means = to_frames(masks.mean(axis=-1, keepdims=True))[..., 0]
        np.testing.assert_allclose(means, ref_means, rtol=2e-6)


@pytest.mark.parametrize("cfg", [SPLEETER, SMALL], ids=["spleeter", "small"])
@pytest.mark.parametrize("L", [1, 3000, 17_000])
def test_overlap_add_one_chunk(cfg, L):
    N, H, T = cfg.frame_length, cfg.frame_step, cfg.T
    nf = dsp.n_segments(L, T, N, H) * T
    rng = np.random.default_rng(L)
    spec = (rng.normal(size=(2, nf, N // 2 + 1)) + 1j * rng.normal(size=(2, nf, N // 2 + 1))).astype(np.complex64)
    ref = np.zeros((L, 2), np.float32)
    dsp.overlap_add(ref, spec, 0, N, H)
    raw = scipy.fft.irfft(spec[None], n=N, axis=-1, norm="forward")
    out = np.zeros((1, L, 2), np.float32)
    tail = hd.overlap_add(raw, 0, N, H, np.zeros((1, 2, N - H), np.float32), out, 0, L)
    np.testing.assert_allclose(out[0], ref, rtol=1e-5, atol=2e-6 * np.abs(ref).max())
    assert tail.shape == (1, 2, N - H)


def test_known_network_matches_numpy():
    x = np.random.default_rng(3).uniform(0, 3, size=(2, 2, 8, 16)).astype(np.float32)
    a, b = known_params(3)
    np.testing.assert_allclose(hd.known_network(x, a, b), numpy_known_network(a, b)(x), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------- whole songs, streamed

def _tol(ref):
    return dict(rtol=1e-4, atol=2e-5 * max(1.0, float(np.abs(ref).max())))


def _one_segment(cfg):  # the longest L with ceil((L + N) / H) == T frames
    return cfg.T * cfg.frame_step - cfg.frame_length


SMALL_LENGTHS = [1, 7, 63, 64, 65, _one_segment(SMALL), _one_segment(SMALL) + 1, 5 * 128 + 3, 1000, 2 * 128 * 7 + 11]


@pytest.mark.parametrize("L", SMALL_LENGTHS)
@pytest.mark.parametrize("cfg", [
    SMALL,
    geometry(N=64, H=16, T=8, F=16, n_stems=4, ext="average"),
    geometry(N=64, H=16, T=8, F=33, n_stems=5, p=1.0),
    geometry(N=32, H=16, T=4, F=8, n_stems=3),  # N/H = 2
], ids=["2stems", "4stems-average", "5stems-allbins-p1", "overlap2"])
def test_streamed_matches_reference_small(cfg, L):
    a, b = known_params(cfg.n_stems)
    x = waveform(L, seed=L)
    ref = reference(x, cfg, a, b)
    whole = host_separate(x, cfg, a, b, chunk_segments=10**6)
    np.testing.assert_allclose(whole, ref, **_tol(ref))
    for B in (1, 2, 3):
        for staged in (True, False):
            got = host_separate(x, cfg, a, b, chunk_segments=B, staged=staged)
            np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(whole).max())),
                                       err_msg=f"chunks of {B} segments, staged={staged}")


@pytest.mark.parametrize("L,chunks", [
    (1, (1,)),                                 # shorter than one frame
    (4095, (1,)),
    (_one_segment(SPLEETER), (1,)),            # exactly one segment's worth
    (_one_segment(SPLEETER) + 1, (1, 2)),      # one sample more: two segments
    (3 * 524_288 + 1000, (1, 3)),              # many segments: 4
])
def test_streamed_matches_reference_spleeter(L, chunks):
    cfg = SPLEETER
    a, b = known_params(2)
    x = waveform(L, seed=7)
    ref = reference(x, cfg, a, b)
    for B in chunks:
        got = host_separate(x, cfg, a, b, chunk_segments=B, staged=(B == 1))
        assert not np.isnan(got).any()
        np.testing.assert_allclose(got, ref, **_tol(ref), err_msg=f"chunks of {B} segments")


def test_average_extension_spleeter_geometry():
    cfg = geometry(n_stems=4, ext="average")
    a, b = known_params(4)
    x = waveform(_one_segment(cfg) + 5000, seed=11)
    ref = reference(x, cfg, a, b)
    got = host_separate(x, cfg, a, b, chunk_segments=1)
    np.testing.assert_allclose(got, ref, **_tol(ref))


# ---------------------------------------------------------------------------------------------- the Pipeline, emulated
# fastsep._host_dsp.emulated is the C++ Pipeline (csrc/src/pipeline.cpp: chunk loop, pinned staging, plans, tail)
# built against a host emulation of CUDA and cuFFT (csrc/testing), driven through fastsep.native's wrapper.

from fastsep import native  # noqa: E402
from fastsep.errors import FastsepError, InputError  # noqa: E402


@pytest.fixture
def emulated(monkeypatch):
    monkeypatch.setattr(native, "_module", hd.emulated)
    monkeypatch.setattr(native, "_loaded", True)
    monkeypatch.setattr(native, "_why_unavailable", None)
    return native


@pytest.fixture(params=["first", "last"])
def schedule(request, monkeypatch):
    """The emulated runtime defers stream work and runs it in an adversarial order: the compute stream as far as it
    can before the copy streams ("first"), or the copy streams first ("last"). A missing event wait between them
    reads NaN or stale chunks."""
    monkeypatch.setenv("FASTSEP_FAKE_CUDA_SCHEDULE", request.param)
    hd.emulated.reset_counters()
    yield request.param
    assert hd.emulated.hazards() == 0, "cudaHostUnregister with queued work, or a stuck synchronisation"


def emulated_pipeline(cfg, max_batch, dtype="float32", known=True):
    pipe = native.Pipeline(cfg.n_stems, cfg.F, T=cfg.T, frame_length=cfg.frame_length, frame_step=cfg.frame_step,
                           separation_exponent=cfg.separation_exponent, mask_extension=cfg.mask_extension,
                           dtype=dtype, max_batch=max_batch)
    if known:
        pipe.use_known_network(*known_params(cfg.n_stems))
    return pipe


@pytest.mark.parametrize("L", SMALL_LENGTHS)
@pytest.mark.parametrize("cfg", [
    SMALL,
    geometry(N=64, H=16, T=8, F=16, n_stems=4, ext="average"),
    geometry(N=64, H=16, T=8, F=33, n_stems=5, p=1.0),
    geometry(N=32, H=16, T=4, F=8, n_stems=3),
], ids=["2stems", "4stems-average", "5stems-allbins-p1", "overlap2"])
def test_emulated_pipeline_matches_reference(emulated, schedule, cfg, L):
    a, b = known_params(cfg.n_stems)
    x = waveform(L, seed=L + 1)
    ref = reference(x, cfg, a, b)
    for B in (1, 2, 3):
        pipe = emulated_pipeline(cfg, B)
        got = pipe.separate(x)
        assert got.shape == (cfg.n_stems, L, 2) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, **_tol(ref), err_msg=f"max_batch={B}")
        # device input and output (emulated device memory is host memory): framing from the caller's buffer and
        # overlap-add straight into the caller's output
        out = np.full((cfg.n_stems, L, 2), np.nan, np.float32)
        pipe._impl.separate(x.ctypes.data, L, True, out.ctypes.data, True, None, None)
        np.testing.assert_allclose(out, got, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("L,B", [(1, 1), (_one_segment(SPLEETER), 1), (_one_segment(SPLEETER) + 1, 1),
                                 (_one_segment(SPLEETER) + 1, 2)])
def test_emulated_pipeline_spleeter_geometry(emulated, L, B):
    cfg = geometry(n_stems=2)
    x = waveform(L, seed=5)
    got = emulated_pipeline(cfg, B).separate(x)
    ref = reference(x, cfg, *known_params(2))
    np.testing.assert_allclose(got, ref, **_tol(ref))


def test_emulated_network_callback_sees_magnitudes_and_writes_estimates(emulated):
    cfg = geometry(N=64, H=16, T=8, F=16, n_stems=3, ext="average")
    pipe = emulated_pipeline(cfg, 2, known=False)
    L = 5 * 128 + 9  # 45 frames: 6 segments of 8, chunks of 2, 2, 2
    x = waveform(L, seed=3)
    nseg = dsp.n_segments(L, cfg.T, cfg.frame_length, cfg.frame_step)
    est = np.random.default_rng(4).uniform(0, 2, (nseg, 3, 2, cfg.T, cfg.F)).astype(np.float32)
    seen, done = [], [0]

    def network(batch):
        assert pipe.net_input.shape == (2, 2, cfg.T, cfg.F) and pipe.net_output_shape(batch)[0] == batch
        seen.append(pipe.download_net_input(batch))
        pipe.upload_net_output(est[done[0]:done[0] + batch])
        done[0] += batch

    pipe.set_network(network)
    got = pipe.separate(x)
    spec = dsp.stft_frames(x, 0, nseg * cfg.T, cfg.frame_length, cfg.frame_step)
    np.testing.assert_allclose(np.concatenate(seen), dsp.magnitude_segments(spec, cfg.T, cfg.F), rtol=1e-5,
                               atol=1e-5)
    ref = dsp.separate_reference(x, lambda mag: est, cfg)
    ref = np.stack([ref[n] for n in cfg.instruments])
    np.testing.assert_allclose(got, ref, **_tol(ref))


def test_emulated_fp16_network_io(emulated):
    cfg = geometry(N=64, H=16, T=8, F=16, n_stems=4)
    x = waveform(1000, seed=9)
    a, b = known_params(4)
    got = emulated_pipeline(cfg, 2, dtype="float16").separate(x)
    net32 = numpy_known_network(a, b)
    ref16 = reference_with(x, cfg, lambda mag: net32(mag.astype(np.float16).astype(np.float32))
                           .astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(got, ref16, rtol=0, atol=2e-3 * float(np.abs(ref16).max()))


def reference_with(x, cfg, net):
    ref = dsp.separate_reference(x, net, cfg)
    return np.stack([ref[n] for n in cfg.instruments])


def test_emulated_memory_is_flat_and_freed(emulated):
    cfg = SMALL
    base = hd.emulated.live_device_bytes()
    pipe = emulated_pipeline(cfg, 2)
    pipe.separate(waveform(10))
    held = hd.emulated.live_device_bytes()
    assert held - base == pipe.device_bytes
    pipe.separate(waveform(100_000))
    assert hd.emulated.live_device_bytes() == held
    del pipe
    assert hd.emulated.live_device_bytes() == base


def test_emulated_errors(emulated, monkeypatch):
    cfg = SMALL
    pipe = emulated_pipeline(cfg, 2, known=False)
    x = waveform(700, seed=1)
    with pytest.raises(InputError, match="no network"):
        pipe.separate(x)
    pipe.use_known_network(*known_params(2))
    good = pipe.separate(x)

    monkeypatch.setenv("FASTSEP_FAKE_CUDA_FAIL", "cufftExecC2R")
    with pytest.raises(native.GpuError, match=r"cufftExecC2R.*pipeline\.cpp:\d+") as info:
        pipe.separate(x)
    assert isinstance(info.value, FastsepError) and "\n" not in str(info.value)
    monkeypatch.setenv("FASTSEP_FAKE_CUDA_FAIL", "cudaMalloc")
    with pytest.raises(native.GpuError, match="cudaMalloc"):
        emulated_pipeline(cfg, 2)
    monkeypatch.delenv("FASTSEP_FAKE_CUDA_FAIL")
    np.testing.assert_array_equal(pipe.separate(x), good)  # still usable

    def broken(batch):
        raise KeyError("the network failed")

    pipe.set_network(broken)
    with pytest.raises(KeyError, match="the network failed"):
        pipe.separate(x)
    pipe.set_network(None)
    np.testing.assert_array_equal(pipe.separate(x), good)

    with pytest.raises(InputError):
        pipe.separate(np.zeros((10, 3, 1), np.float32))
    with pytest.raises(InputError):
        pipe.separate(x, out=np.zeros((2, 699, 2), np.float32))
    with pytest.raises(FastsepError):
        native.Pipeline(2, 10_000)


def test_emulated_input_conversions(emulated):
    cfg = SMALL
    pipe = emulated_pipeline(cfg, 3)
    mono = waveform(900, seed=2)[:, 0]
    stereo = np.repeat(mono[:, None], 2, axis=1)
    expect = pipe.separate(stereo)
    np.testing.assert_array_equal(pipe.separate(mono), expect)
    np.testing.assert_array_equal(pipe.separate(stereo.astype(np.float64)), expect)
    np.testing.assert_array_equal(pipe.separate(np.concatenate([stereo, stereo[:, :1]], axis=1)), expect)
    out = np.zeros_like(expect)
    assert pipe.separate(stereo, out=out) is out
    np.testing.assert_array_equal(out, expect)
    assert pipe.separate(np.zeros((0, 2), np.float32)).shape == (2, 0, 2)


class PosingDeviceArray:
    """Emulated device memory is host memory: a NumPy buffer can pose as a device array (CUDA array interface)."""

    def __init__(self, a, stream=None):
        self.base = a
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
                                         "strides": None, "version": 3, "stream": stream}


def test_emulated_device_arrays(emulated):
    cfg = SMALL
    pipe = emulated_pipeline(cfg, 2)
    x = waveform(700, seed=8)
    host = pipe.separate(x)

    out = pipe.separate(PosingDeviceArray(x, stream=1))  # device in -> device out, after the producer stream
    assert isinstance(out, hd.emulated.DeviceArray) and out.shape == (2, 700, 2)
    np.testing.assert_array_equal(out.to_numpy(), host)
    cai = out.__cuda_array_interface__
    assert cai["data"] == (out.ptr, False) and cai["typestr"] == "<f4" and cai["shape"] == (2, 700, 2)
    assert out.__dlpack_device__() == (2, 0)

    live = hd.emulated.live_device_bytes()
    capsule = out.__dlpack__(stream=None)
    del out  # the capsule keeps the memory alive ...
    assert hd.emulated.live_device_bytes() == live
    del capsule  # ... and frees it when dropped unconsumed
    assert hd.emulated.live_device_bytes() == live - 2 * 700 * 2 * 4

    buf = np.full((2, 700, 2), np.nan, np.float32)  # host in -> caller's device buffer
    pipe.separate(x, out=PosingDeviceArray(buf))
    np.testing.assert_array_equal(buf, host)
    with pytest.raises(InputError):
        pipe.separate(PosingDeviceArray(x.astype(np.float64)))  # only CuPy / PyTorch inputs are converted
    with pytest.raises(InputError):
        pipe.separate(x, out=PosingDeviceArray(np.zeros((2, 700, 3), np.float32)))

    view = pipe.net_input
    assert view.__cuda_array_interface__["shape"] == (2, 2, cfg.T, cfg.F)
    assert view.__cuda_array_interface__["stream"] == pipe.stream != 0
    assert pipe.net_output.shape == (2, 2, 2, cfg.T, cfg.F) and pipe.net_output.dtype == np.float32


# ---------------------------------------------------------------------------------------------- host memory paths
# Page-locked host memory is reached by DMA (no CPU copy): the returned stems live in pooled pinned memory, and the
# caller's input and out= are registered for the call; pageable memory goes through the pinned staging buffers.

LONG = 9 * 128 + 37  # SMALL: 10 segments of 8 frames, chunks of 2: five chunks, both slots used twice


def _path(pipe):
    p = pipe.last_host_path
    return p["input"], p["output"], p["input_registered"], p["output_registered"]


def test_emulated_host_paths_give_the_same_stems(emulated, schedule, monkeypatch):
    cfg = SMALL
    x = waveform(LONG, seed=21)
    ref = reference(x, cfg, *known_params(2))
    pipe = emulated_pipeline(cfg, 2)
    m = hd.emulated

    got = pipe.separate(x)  # default: input registered for the call, output in pooled pinned memory
    assert _path(pipe) == ("direct", "direct", True, False)
    assert m.is_page_locked(got.ctypes.data, got.nbytes) and not m.is_page_locked(x.ctypes.data)
    assert m.registered_bytes() == 0 and m.pageable_async_copies() == 0
    np.testing.assert_allclose(got, ref, **_tol(ref))

    out = np.full_like(got, np.nan)  # out= in ordinary memory: registered for the call, then unregistered
    assert pipe.separate(x, out=out) is out
    assert _path(pipe) == ("direct", "direct", True, True) and m.registered_bytes() == 0
    np.testing.assert_array_equal(out, got)

    pinned_out = native.empty_pinned(got.shape)  # already page-locked: DMA without registering
    pipe.separate(x, out=pinned_out)
    assert _path(pipe) == ("direct", "direct", True, False)
    np.testing.assert_array_equal(pinned_out, got)
    assert m.pageable_async_copies() == 0

    pipe.register_host = False  # staging: pageable input and out= are copied by the CPU through pinned buffers
    out[:] = np.nan
    pipe.separate(x, out=out)
    assert _path(pipe) == ("stage", "stage", False, False)
    np.testing.assert_array_equal(out, got)
    np.testing.assert_array_equal(pipe.separate(x), got)  # the result itself is still pinned: direct
    assert _path(pipe) == ("stage", "direct", False, False)
    assert m.pageable_async_copies() == 0

    pipe.pinned_output = False  # results in ordinary memory: staged
    res = pipe.separate(x)
    assert _path(pipe) == ("stage", "stage", False, False) and not m.is_page_locked(res.ctypes.data)
    np.testing.assert_array_equal(res, got)
    pipe.pinned_output = True

    pipe.register_host = True  # registration refused (read-only pages, a shared page, the driver): staging
    monkeypatch.setenv("FASTSEP_FAKE_CUDA_FAIL", "cudaHostRegister")
    out[:] = np.nan
    pipe.separate(x, out=out)
    assert _path(pipe) == ("stage", "stage", False, False)
    np.testing.assert_array_equal(out, got)


def test_emulated_register_conflict_falls_back(emulated, schedule):
    """Input and out= sharing a page: the second registration is refused, that side is staged."""
    cfg = SMALL
    L = 700
    buf = np.full(L * 2 + 2 * L * 2, np.nan, np.float32)  # one allocation: input, then the output right after it
    x, out = buf[:L * 2].reshape(L, 2), buf[L * 2:].reshape(2, L, 2)
    x[:] = waveform(L, seed=22)
    pipe = emulated_pipeline(cfg, 2)
    pipe.separate(x, out=out)
    assert _path(pipe) == ("direct", "stage", True, False)
    assert hd.emulated.registered_bytes() == 0
    np.testing.assert_allclose(out, reference(x.copy(), cfg, *known_params(2)), **_tol(out))


def test_emulated_pinned_output_outlives_pipeline_and_returns_to_pool(emulated, schedule):
    m = hd.emulated
    cfg = SMALL
    x = waveform(LONG, seed=23)
    pipe = emulated_pipeline(cfg, 2)
    got = pipe.separate(x)
    expect = got.copy()
    block = m.live_pinned_bytes()
    del pipe  # the array owns its memory, not the pipeline
    assert m.is_page_locked(got.ctypes.data, got.nbytes)
    np.testing.assert_array_equal(got, expect)

    stats = native.pinned_pool_stats()
    view = got[1, 10:20]
    del got  # a view keeps the block
    assert native.pinned_pool_stats()["cached_bytes"] == stats["cached_bytes"]
    np.testing.assert_array_equal(view, expect[1, 10:20])
    del view  # the last user gone: the block waits in the pool, still page-locked
    after = native.pinned_pool_stats()
    assert after["cached_bytes"] > stats["cached_bytes"] and m.live_pinned_bytes() == block

    pipe = emulated_pipeline(cfg, 2)
    again = pipe.separate(x)  # same size: the cached block, no new cudaMallocHost
    assert native.pinned_pool_stats()["allocations"] == after["allocations"]
    assert native.pinned_pool_stats()["hits"] == after["hits"] + 1
    np.testing.assert_array_equal(again, expect)
    del again
    limit = native.pinned_pool_stats()["limit"]
    try:
        before = m.live_pinned_bytes()
        native.set_pinned_pool_limit(0)  # frees the cached blocks
        assert native.pinned_pool_stats()["cached_bytes"] == 0 and m.live_pinned_bytes() < before
        got = pipe.separate(x)
        del got  # over the limit: freed at once
        assert native.pinned_pool_stats()["cached_bytes"] == 0
    finally:
        native.set_pinned_pool_limit(limit)


def test_emulated_no_pinned_memory_falls_back_to_numpy(emulated, schedule, monkeypatch):
    cfg = SMALL
    x = waveform(LONG, seed=24)
    pipe = emulated_pipeline(cfg, 2, known=True)
    pipe.register_host = False
    expect = pipe.separate(x, out=np.empty((2, LONG, 2), np.float32))  # staging buffers exist from here on
    limit = native.pinned_pool_stats()["limit"]
    try:
        native.set_pinned_pool_limit(0)
        monkeypatch.setenv("FASTSEP_FAKE_CUDA_FAIL", "cudaMallocHost")
        got = pipe.separate(x)
        assert not hd.emulated.is_page_locked(got.ctypes.data) and _path(pipe)[1] == "stage"
        np.testing.assert_array_equal(got, expect)
    finally:
        native.set_pinned_pool_limit(limit)


def test_emulated_failure_unregisters_after_the_streams_drain(emulated, schedule, monkeypatch):
    cfg = SMALL
    x = waveform(LONG, seed=25)
    pipe = emulated_pipeline(cfg, 2)
    good = pipe.separate(x)
    out = np.zeros_like(good)
    monkeypatch.setenv("FASTSEP_FAKE_CUDA_FAIL", "cufftExecC2R")
    with pytest.raises(native.GpuError, match="cufftExecC2R"):
        pipe.separate(x, out=out)
    assert hd.emulated.registered_bytes() == 0  # unregistered, and only after the queued copies ran (hazards)
    monkeypatch.delenv("FASTSEP_FAKE_CUDA_FAIL")

    def network(batch):  # a network that fails on the third chunk, with copies of earlier chunks in flight
        network.calls += 1
        if network.calls == 3:
            raise KeyError("engine failed")
        pipe.run_known_network(batch)

    network.calls = 0
    pipe.set_network(network)
    with pytest.raises(KeyError, match="engine failed"):
        pipe.separate(x, out=out)
    assert hd.emulated.registered_bytes() == 0
    pipe.set_network(None)
    np.testing.assert_array_equal(pipe.separate(x, out=out), good)


# ---------------------------------------------------------------------------------------------- overlap, full band
# The emulated Pipeline with overlapped segments (segment_hop < T) and full band (the "average" extension) against the
# CPU pipeline's fastsep.quality, the same known network on both sides.

from fastsep import quality  # noqa: E402


class KnownRunner:
    def __init__(self, n_stems):
        self.run = numpy_known_network(*known_params(n_stems))


@pytest.mark.parametrize("full_band", [False, True])
@pytest.mark.parametrize("overlap,B,L", [
    (0.5, 1, 1000),             # hop 4 of T = 8
    (0.5, 3, 2 * 128 * 7 + 11),  # chunks of 3 overlapped segments: carried blended sums
    (0.25, 2, 5 * 128 + 3),      # hop 6
    (0.75, 2, 1000),             # hop 2: four segments hold each frame
    (0.6, 1, 63),                # one segment
])
def test_emulated_overlap_matches_cpu_pipeline(emulated, schedule, overlap, B, L, full_band):
    cfg = geometry(N=64, H=16, T=8, F=16, n_stems=3)
    q = quality.Quality(overlap, full_band)
    pipe = native.Pipeline.from_config(cfg, max_batch=B, quality=q)
    pipe.use_known_network(*known_params(3))
    x = waveform(L, seed=L)
    got = pipe.separate(x)
    want = np.stack(quality.separate(x, cfg, KnownRunner(3), q, B))
    np.testing.assert_allclose(got, want, **_tol(want))
    schedule_ = quality.Schedule(dsp.n_frames(L, 64, 16), 8, overlap)
    assert pipe.segment_hop == schedule_.hop and pipe._impl.segments_for(L) == len(schedule_)
    assert pipe.mask_extension == ("average" if full_band else "zeros")
