"""GPU pipeline (fastsep._native) against dsp.py, with the built-in known network or networks given here.

Two skip levels: "fastsep._native not built" (no CUDA toolkit at install time) and "no GPU present".
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from fastsep import dsp, native
from fastsep.errors import FastsepError, InputError

pytestmark = pytest.mark.gpu

if not native.built():
    pytest.skip(f"fastsep._native not built: {native.unavailable_reason()}", allow_module_level=True)
if not native.available():
    pytest.skip(f"no GPU present: {native.unavailable_reason()}", allow_module_level=True)

SEG = 512 * 1024  # samples per segment
ONE_SEGMENT = SEG - 4096  # the longest input with exactly T frames


def geometry(n_stems=2, F=1024, p=2.0, ext="zeros"):
    return types.SimpleNamespace(
        frame_length=4096, frame_step=1024, T=512, F=F, bins=2049, separation_exponent=p, mask_extension=ext,
        instruments=tuple(f"stem{i}" for i in range(n_stems)), n_stems=n_stems,
    )


def known_params(n):
    return [0.7 + 0.45 * i for i in range(n)], [0.3 - 0.2 * i for i in range(n)]


def numpy_known_network(a, b, half=False):
    a32 = np.asarray(a, np.float32)[None, :, None, None, None]
    b32 = np.asarray(b, np.float32)[None, :, None, None, None]

    def net(mag):
        x = mag[:, None]
        if half:
            x = x.astype(np.float16).astype(np.float32)
        y = (x / (np.float32(1) + np.exp(-(a32 * x + b32)))).astype(np.float32)
        return y.astype(np.float16).astype(np.float32) if half else y

    return net


def waveform(L, seed=0):
    return (0.5 * np.random.default_rng(seed).standard_normal((L, 2))).astype(np.float32)


def reference(x, cfg, net):
    ref = dsp.separate_reference(x, net, cfg)
    return np.stack([ref[name] for name in cfg.instruments])


def make(cfg, max_batch=2, dtype="float32", known=True):
    pipe = native.Pipeline(cfg.n_stems, cfg.F, T=cfg.T, separation_exponent=cfg.separation_exponent,
                           mask_extension=cfg.mask_extension, dtype=dtype, max_batch=max_batch)
    if known:
        pipe.use_known_network(*known_params(cfg.n_stems))
    return pipe


def assert_close(got, ref, rel=2e-5):
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max()) if ref.size else 0.0
    assert err <= rel * scale, f"max abs error {err:.3g} > {rel * scale:.3g}"


# ---------------------------------------------------------------------------------------------- steps


def test_stft_magnitudes_match_dsp():
    cfg = geometry()
    pipe = make(cfg, max_batch=2)
    L = 2 * SEG + 12345  # 3 segments: chunks of 2 and 1
    x = waveform(L, 1)
    seen = []

    def network(b):
        seen.append(pipe.download_net_input(b))
        pipe.run_known_network(b)

    pipe.set_network(network)
    pipe.separate(x)
    assert [s.shape[0] for s in seen] == [2, 1]
    got = np.concatenate(seen)
    nseg = dsp.n_segments(L)
    ref = dsp.magnitude_segments(dsp.stft_frames(x, 0, nseg * 512), 512, cfg.F)
    assert got.shape == ref.shape == (3, 2, 512, 1024)
    assert_close(got, ref, rel=1e-5)


@pytest.mark.parametrize("ext", ["zeros", "average"])
def test_masks_and_inverse_with_given_estimates(ext):
    """The network output is uploaded from the host: masks, masked spectra, C2R and OLA alone vs dsp.py."""
    cfg = geometry(n_stems=3, ext=ext)
    pipe = make(cfg, max_batch=1, known=False)
    L = SEG + 777
    x = waveform(L, 2)
    nseg = dsp.n_segments(L)
    est = np.random.default_rng(3).uniform(0, 2, (nseg, 3, 2, 512, cfg.F)).astype(np.float32)
    chunks = iter(range(nseg))

    def network(b):
        i = next(chunks)
        pipe.upload_net_output(est[i:i + b])

    pipe.set_network(network)
    got = pipe.separate(x)
    ref = reference(x, cfg, lambda mag: est)
    assert_close(got, ref)


def test_inverse_is_identity_for_one_stem_all_bins():
    # one stem: M = 1 exactly, and with F = bins nothing is cut: the pipeline must give the input back
    cfg = geometry(n_stems=1, F=2049)
    pipe = make(cfg, max_batch=2)
    x = waveform(3 * SEG // 2 + 99, 4)
    got = pipe.separate(x)
    assert_close(got[0], x, rel=2e-5)


# ---------------------------------------------------------------------------------------------- whole DSP


@pytest.mark.parametrize("L", [1, 4095, ONE_SEGMENT, ONE_SEGMENT + 1, 3 * SEG + 1000])
@pytest.mark.parametrize("cfg", [geometry(), geometry(4, ext="average"), geometry(5, F=1536, p=1.0)],
                         ids=["2stems", "4stems-average", "5stems-16kHz-p1"])
def test_whole_dsp_matches_reference(cfg, L):
    x = waveform(L, L % 1000)
    pipe = make(cfg, max_batch=2)
    got = pipe.separate(x)
    assert isinstance(got, np.ndarray) and got.shape == (cfg.n_stems, L, 2) and got.dtype == np.float32
    assert_close(got, reference(x, cfg, numpy_known_network(*known_params(cfg.n_stems))))


def test_chunked_equals_unchunked():
    cfg = geometry(4)
    x = waveform(4 * SEG + 5, 5)
    whole = make(cfg, max_batch=8).separate(x)
    for B in (1, 2, 3):
        assert_close(make(cfg, max_batch=B).separate(x), whole, rel=1e-6)


def test_device_memory_does_not_depend_on_length():
    cfg = geometry()
    pipe = make(cfg, max_batch=1)
    pipe.separate(waveform(1000))
    before = pipe.device_bytes
    pipe.separate(waveform(6 * SEG, 6))
    assert pipe.device_bytes == before


def test_repeated_calls_and_mono_input():
    cfg = geometry()
    pipe = make(cfg)
    mono = waveform(50_000, 7)[:, 0]
    a = pipe.separate(mono)
    b = pipe.separate(np.repeat(mono[:, None], 2, axis=1).astype(np.float64))
    np.testing.assert_array_equal(a, b)


def test_out_argument_and_empty_input():
    cfg = geometry()
    pipe = make(cfg)
    x = waveform(30_000, 8)
    out = np.zeros((2, 30_000, 2), np.float32)
    assert pipe.separate(x, out=out) is out
    np.testing.assert_array_equal(out, pipe.separate(x))
    assert pipe.separate(np.zeros((0, 2), np.float32)).shape == (2, 0, 2)


def test_fp16_network_io():
    cfg = geometry(4)
    x = waveform(SEG + 4321, 9)
    pipe = make(cfg, max_batch=2, dtype="float16")
    assert pipe.dtype == np.float16 and pipe.net_input.__cuda_array_interface__["typestr"] == "<f2"
    got = pipe.separate(x)
    ref16 = reference(x, cfg, numpy_known_network(*known_params(4), half=True))
    ref32 = reference(x, cfg, numpy_known_network(*known_params(4)))
    assert_close(got, ref16, rel=2e-3)
    snr = 10 * np.log10(np.sum(ref32 ** 2) / np.sum((got - ref32) ** 2))
    assert snr > 40, snr


# ---------------------------------------------------------------------------------------------- host memory paths


def test_host_output_is_pinned_and_outlives_the_pipeline():
    cfg = geometry(4)
    x = waveform(2 * SEG + 4321, 13)
    pipe = make(cfg, max_batch=1)  # three chunks: uploads, DSP and downloads of neighbours overlap
    got = pipe.separate(x)
    assert native.is_page_locked(got) and pipe.last_host_path["output"] == "direct"
    ref = reference(x, cfg, numpy_known_network(*known_params(4)))
    assert_close(got, ref)
    expect = got.copy()
    del pipe
    import gc

    gc.collect()
    np.testing.assert_array_equal(got, expect)  # the array owns its page-locked block
    view = got[2]
    del got
    np.testing.assert_array_equal(view, expect[2])
    stats = native.pinned_pool_stats()
    del view  # back to the pool, reused by the next song of the same size
    assert native.pinned_pool_stats()["cached_bytes"] > stats["cached_bytes"]
    pipe = make(cfg, max_batch=1)
    before = native.pinned_pool_stats()
    np.testing.assert_array_equal(pipe.separate(x), expect)
    after = native.pinned_pool_stats()
    assert after["allocations"] == before["allocations"] and after["hits"] == before["hits"] + 1


@pytest.mark.parametrize("register", [True, False], ids=["registered", "staged"])
def test_host_paths_agree(register):
    cfg = geometry(2)
    x = waveform(3 * SEG + 77, 14)
    pipe = make(cfg, max_batch=1)
    expect = pipe.separate(x)
    pipe.register_host = register
    out = np.full((2, x.shape[0], 2), np.nan, np.float32)
    assert pipe.separate(x, out=out) is out
    path = pipe.last_host_path
    if register:  # cudaHostRegister of ordinary NumPy memory for the call, then unregistered
        assert path["output_registered"] and path["output"] == "direct"
        assert not native.is_page_locked(out)
    else:
        assert path == {"input": "stage", "output": "stage", "input_registered": False, "output_registered": False}
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(pipe.separate(x), expect)
    pinned = native.empty_pinned(out.shape)
    pipe.separate(x, out=pinned)
    assert pipe.last_host_path["output"] == "direct" and not pipe.last_host_path["output_registered"]
    np.testing.assert_array_equal(pinned, expect)
    ro = np.frombuffer(x.tobytes(), np.float32).reshape(x.shape)  # read-only pages: registered or staged
    np.testing.assert_array_equal(pipe.separate(ro), expect)


# ---------------------------------------------------------------------------------------------- errors


def test_errors_are_fastsep_errors_and_pipeline_survives():
    cfg = geometry()
    pipe = make(cfg, known=False)
    with pytest.raises(InputError):
        pipe.separate(waveform(1000))  # no network at all
    pipe.use_known_network(*known_params(2))
    with pytest.raises(InputError):
        pipe.separate(np.zeros((10, 2, 2), np.float32))
    with pytest.raises(InputError):
        pipe.separate(np.full((100, 2), np.nan, np.float32))

    def broken(b):
        raise RuntimeError("engine exploded")

    pipe.set_network(broken)
    with pytest.raises(RuntimeError, match="engine exploded"):
        pipe.separate(waveform(SEG * 2))
    pipe.set_network(None)
    x = waveform(20_000, 10)
    assert_close(pipe.separate(x), reference(x, cfg, numpy_known_network(*known_params(2))))
    with pytest.raises(FastsepError):
        native.Pipeline(2, 4000)


# ---------------------------------------------------------------------------------------------- device arrays


def test_torch_zero_copy_and_external_network():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    cfg = geometry(2)
    pipe = make(cfg, max_batch=2)
    x = waveform(2 * SEG + 99, 11)
    host = pipe.separate(x)

    xt = torch.from_numpy(x).cuda()
    out = pipe.separate(xt)
    assert not isinstance(out, np.ndarray)
    t = torch.from_dlpack(out)
    assert t.is_cuda and tuple(t.shape) == (2, x.shape[0], 2) and t.data_ptr() == out.ptr  # no copy
    t2 = torch.as_tensor(out, device="cuda")
    assert t2.data_ptr() == out.ptr
    assert_close(t.cpu().numpy(), host, rel=1e-6)

    # device output buffer given by the caller, host input
    out_t = torch.empty((2, x.shape[0], 2), device="cuda")
    pipe.separate(x, out=out_t)
    assert_close(out_t.cpu().numpy(), host, rel=1e-6)

    # the same estimates computed by torch on the pipeline's stream, through the CUDA array interface
    inp = torch.as_tensor(pipe.net_input, device="cuda")
    est = torch.as_tensor(pipe.net_output, device="cuda")
    assert inp.data_ptr() == pipe.net_input.ptr and tuple(est.shape) == pipe.net_output_shape()
    a, b = known_params(2)
    a_t = torch.tensor(a, device="cuda").view(1, 2, 1, 1, 1)
    b_t = torch.tensor(b, device="cuda").view(1, 2, 1, 1, 1)
    torch.cuda.synchronize()  # a_t, b_t are ready before the pipeline's (non-blocking) stream reads them
    stream = torch.cuda.ExternalStream(pipe.stream)

    def network(batch):
        with torch.cuda.stream(stream):
            xin = inp[:batch, None]
            est[:batch] = xin * torch.sigmoid(a_t * xin + b_t)

    pipe.set_network(network)
    assert_close(pipe.separate(x), host, rel=1e-5)


def test_cupy_zero_copy():
    cupy = pytest.importorskip("cupy")
    cfg = geometry(2)
    pipe = make(cfg)
    x = waveform(SEG + 5, 12)
    host = pipe.separate(x)
    xc = cupy.asarray(x)
    out = pipe.separate(xc)
    oc = cupy.asarray(out)
    assert oc.data.ptr == out.ptr
    assert_close(cupy.asnumpy(oc), host, rel=1e-6)
    oc2 = cupy.from_dlpack(out)
    assert oc2.data.ptr == out.ptr
    # mono and float64 device input are converted with CuPy
    mono = cupy.asarray(x[:, 0].astype(np.float64))
    expect = pipe.separate(np.repeat(x[:, :1], 2, axis=1))
    assert_close(cupy.asnumpy(cupy.asarray(pipe.separate(mono))), expect, rel=1e-6)
