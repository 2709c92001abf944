"""The GPU pipeline: a thin wrapper of fastsep._native (csrc/, built only where a CUDA toolkit and cuFFT are found).

    from fastsep import native
    native.require()                                  # FastsepError with a one-line reason if it cannot run
    pipe = native.Pipeline.from_config(cfg, max_batch=4, dtype="float32")
    pipe.set_network(lambda batch: ...)               # enqueue the network on pipe.stream:
                                                      #   reads pipe.net_input (B, 2, T, F), writes pipe.net_output
                                                      #   (B, n_stems, 2, T, F), first `batch` segments
    stems = pipe.separate(waveform)                   # (n_stems, L, 2) float32

`waveform` is a NumPy (L, 2) float32 array (mono and other channel counts are converted as dsp.to_stereo does),
or a device array (CuPy, PyTorch, anything with __cuda_array_interface__) read in place; the result is NumPy for
host input and a device array (DeviceArray: __cuda_array_interface__ and __dlpack__) for device input, unless
`out` says where to write.

Host memory is reached by DMA, without a CPU copy, where it is page-locked: the NumPy result is allocated in
page-locked memory from a pool (empty_pinned; the block returns to the pool when the array is gone), and with
`register_host` (default) the caller's input and `out=` arrays are page-locked (cudaHostRegister) for the call.
Where that fails, the copies go through pinned staging buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib
import os
from typing import Any, Callable, Optional

import numpy as np

from .errors import FastsepError, InputError, ModelError


class GpuError(FastsepError):
    """A CUDA or cuFFT call of the GPU pipeline failed."""


class GpuUnavailableError(GpuError):
    """The GPU pipeline cannot run here: fastsep was built without CUDA, libcufft is missing, or there is no GPU."""


_module = None
_why_unavailable: Optional[str] = None
_loaded = False

NOT_BUILT = ("the GPU pipeline needs fastsep built with CUDA: no CUDA toolkit (nvcc and cuFFT) was found when "
             "fastsep was installed (install a CUDA 13 toolkit, then reinstall with `pip install 'fastsep[gpu]'`)")


def _cufft_candidates() -> list[str]:
    roots = []
    try:
        import nvidia  # namespace package of the nvidia-* wheels

        roots += list(nvidia.__path__)
    except ImportError:
        pass
    found = []
    for root in roots:
        for sub in ("cu13", "cufft", "cu12"):
            found += sorted(glob.glob(os.path.join(root, sub, "lib", "libcufft.so*")))
    hint = os.environ.get("FASTSEP_CUFFT_ROOT")
    if hint:
        found = sorted(glob.glob(os.path.join(hint, "lib*", "libcufft.so*"))) + found
    return found


def _load():
    """Import fastsep._native once; on a missing libcufft, preload it from the nvidia-cufft wheel and retry."""
    global _module, _why_unavailable, _loaded
    if _loaded:
        return _module
    _loaded = True
    name = f"{__package__}._native"
    try:
        m = importlib.import_module(name)
    except ModuleNotFoundError as e:
        _why_unavailable = NOT_BUILT if e.name == name else f"fastsep._native cannot be loaded: {e}"
        return None
    except ImportError as e:
        if "cufft" not in str(e):
            _why_unavailable = f"fastsep._native cannot be loaded: {e}"
            return None
        for path in _cufft_candidates():
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                continue
        try:
            m = importlib.import_module(name)
        except ImportError as e2:
            _why_unavailable = (f"the GPU pipeline cannot load libcufft ({e2}): pip install 'fastsep[gpu]', "
                                "or set FASTSEP_CUFFT_ROOT to a folder holding lib/libcufft.so")
            return None
    _module = m
    return m


def built() -> bool:
    """Whether fastsep._native (the CUDA build) is importable."""
    return _load() is not None


def unavailable_reason() -> Optional[str]:
    """None if the GPU pipeline can run here, else the one-line reason."""
    m = _load()
    if m is None:
        return _why_unavailable
    if m.device_count() < 1:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        extra = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        return f"the GPU pipeline needs an NVIDIA GPU and driver: no CUDA device is visible{extra}"
    return None


def available() -> bool:
    """Whether the GPU pipeline can run here: built with CUDA and a GPU is visible."""
    return unavailable_reason() is None


def require():
    """The fastsep._native module, or GpuUnavailableError with a one-line reason."""
    why = unavailable_reason()
    if why is not None:
        raise GpuUnavailableError(why)
    return _module


@contextlib.contextmanager
def _errors(invalid: type = InputError):
    """Native exceptions -> fastsep.FastsepError subclasses (one line each); a refused argument -> `invalid`."""
    m = _module
    try:
        yield
    except m.InvalidArgument as e:
        raise invalid(str(e)) from None
    except m.NativeError as e:
        raise GpuError(f"GPU pipeline: {e}") from None


_INT_MAX = 2**31 - 1  # the C++ core's dimensions are ints


def _dimension(name: str, value) -> int:
    """A positive integer dimension of the pipeline; its upper limits are checked by the C++ core."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= _INT_MAX:
        raise ModelError(f"{name} must be an integer in [1, {_INT_MAX}], got {value!r}")
    return int(value)


# how the native call reaches host memory (Pipeline::separate, HostMemory)
_STAGE, _DIRECT, _REGISTER = 0, 1, 2


def empty_pinned(shape) -> np.ndarray:
    """An uninitialised float32 NumPy array in page-locked host memory, from fastsep's pinned pool."""
    m = require()
    with _errors():
        return m.empty_pinned([int(s) for s in shape])


def is_page_locked(a: np.ndarray) -> bool:
    """Whether a NumPy array lies in page-locked host memory (empty_pinned, cudaMallocHost, cudaHostRegister)."""
    return a.size > 0 and bool(require().is_page_locked(a.ctypes.data, a.nbytes))


def pinned_pool_stats() -> dict:
    """cached_bytes, limit, allocations (cudaMallocHost calls) and hits (reuses) of the pinned pool."""
    return dict(require().pinned_pool_stats())


def set_pinned_pool_limit(nbytes: int) -> None:
    """Most bytes of page-locked blocks kept for reuse after their arrays are gone (0: free at once)."""
    if int(nbytes) < 0:
        raise InputError(f"the pinned pool limit must be at least 0 bytes, got {nbytes}")
    require().set_pinned_pool_limit(int(nbytes))


class DeviceView:
    """A non-owning view of a pipeline buffer on the device, for CuPy / PyTorch / TensorRT.

    `ptr` is the device address; `__cuda_array_interface__` carries the pipeline's stream, which the data is
    ordered on. Valid as long as the Pipeline lives.
    """

    def __init__(self, ptr: int, shape: tuple, dtype: np.dtype, stream: int, owner: Any = None):
        self.ptr = int(ptr)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.stream = int(stream)
        self._owner = owner  # keeps the pipeline (and so the memory) alive

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "strides": None,
                "version": 3, "stream": self.stream}

    def __repr__(self) -> str:
        return f"DeviceView(ptr=0x{self.ptr:x}, shape={self.shape}, dtype={self.dtype.name})"


def _cuda_array_interface(obj) -> Optional[dict]:
    try:
        return obj.__cuda_array_interface__
    except AttributeError:
        return None
    except Exception as e:  # e.g. a torch tensor on the CPU raises; treat as host data
        if "cuda" in type(obj).__module__.lower() or type(obj).__module__.startswith("torch"):
            return None
        raise InputError(f"cannot read the device array: {e}") from None


def _contiguous(cai: dict, itemsize: int) -> bool:
    strides = cai.get("strides")
    if strides is None:
        return True
    expect, ok = itemsize, True
    for dim, stride in zip(reversed(cai["shape"]), reversed(strides)):
        if dim > 1 and stride != expect:
            ok = False
        expect *= dim
    return ok


def _device_stereo(obj):
    """(obj', producer_stream) with obj' a (L, 2) float32 contiguous device array; converts torch/cupy inputs."""
    mod = type(obj).__module__
    producer = None
    if mod.startswith("torch"):
        import torch

        t = obj
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2 or t.shape[1] == 0:
            raise InputError(f"waveform must be (samples,) or (samples, channels), got shape {tuple(obj.shape)}")
        t = t.expand(-1, 2) if t.shape[1] == 1 else t[:, :2]
        t = t.to(torch.float32).contiguous()
        producer = torch.cuda.current_stream(t.device).cuda_stream
        return t, producer
    if mod.startswith("cupy"):
        import cupy

        a = obj
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] == 0:
            raise InputError(f"waveform must be (samples,) or (samples, channels), got shape {tuple(obj.shape)}")
        a = cupy.repeat(a, 2, axis=1) if a.shape[1] == 1 else a[:, :2]
        a = cupy.ascontiguousarray(a, dtype=cupy.float32)
        producer = cupy.cuda.get_current_stream().ptr
        return a, producer
    return obj, None


class Pipeline:
    """STFT, masks and inverse STFT on the GPU for one model configuration, around a caller-supplied network.

    Device memory depends on max_batch (segments per chunk), never on the song's length. segment_hop: frames between
    segment starts, 0 for Spleeter's segments, less than T for overlapped ones cross-faded per frame
    (fastsep.quality; its full band is mask_extension "average").
    """

    def __init__(self, n_stems: int, F: int, *, T: int = 512, frame_length: int = 4096, frame_step: int = 1024,
                 separation_exponent: float = 2.0, mask_extension: str = "zeros", dtype="float32",
                 max_batch: int = 4, register_host: bool = True, pinned_output: bool = True, segment_hop: int = 0):
        m = require()
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise ModelError(f"network dtype must be float32 or float16, got {dt}")
        if mask_extension not in ("zeros", "average"):
            raise ModelError(f"mask_extension must be 'zeros' or 'average', got {mask_extension!r}")
        n_stems, F, T = _dimension("n_stems", n_stems), _dimension("F", F), _dimension("T", T)
        frame_length, frame_step = _dimension("frame_length", frame_length), _dimension("frame_step", frame_step)
        max_batch = _dimension("max_batch", max_batch)
        with _errors(ModelError):  # the core checks the ranges and that every buffer's size fits
            self._impl = m.Pipeline(n_stems, F, T, frame_length, frame_step, float(separation_exponent),
                                    mask_extension, dt.name, max_batch, int(segment_hop))
        self._network: Optional[Callable[[int], None]] = None
        # page-lock the caller's host input and out= for the call (DMA, no CPU copy); False: pinned staging
        self.register_host = bool(register_host)
        # NumPy results in pooled page-locked memory (DMA'd straight in); False: ordinary memory, staged
        self.pinned_output = bool(pinned_output)

    @classmethod
    def from_config(cls, cfg, *, dtype="float32", max_batch: int = 4, quality=None) -> "Pipeline":
        """From a fastsep.models.config.ModelConfig, and a fastsep.quality.Quality (overlap, full band)."""
        hop, extension = 0, cfg.mask_extension
        if quality is not None:
            from .quality import segment_hop

            hop = segment_hop(cfg.T, quality.overlap) if quality.overlap else 0
            extension = quality.extension if quality.full_band else extension
        return cls(cfg.n_stems, cfg.F, T=cfg.T, frame_length=cfg.frame_length, frame_step=cfg.frame_step,
                   separation_exponent=cfg.separation_exponent, mask_extension=extension, dtype=dtype,
                   max_batch=max_batch, segment_hop=hop)

    # --- description
    stream = property(lambda self: self._impl.stream, doc="cudaStream_t of the pipeline, as an int")
    device = property(lambda self: self._impl.device)
    n_stems = property(lambda self: self._impl.n_stems)
    F = property(lambda self: self._impl.F)
    T = property(lambda self: self._impl.T)
    frame_length = property(lambda self: self._impl.frame_length)
    frame_step = property(lambda self: self._impl.frame_step)
    bins = property(lambda self: self._impl.bins)
    max_batch = property(lambda self: self._impl.max_batch)
    segment_hop = property(lambda self: self._impl.segment_hop, doc="0: Spleeter's segments; else overlapped ones")
    separation_exponent = property(lambda self: self._impl.separation_exponent)
    mask_extension = property(lambda self: self._impl.mask_extension)
    device_bytes = property(lambda self: self._impl.device_bytes, doc="device memory held (after a host-I/O run)")
    last_host_path = property(lambda self: dict(self._impl.last_host_path),
                              doc="how the last separate() reached host input and output: stage or direct (DMA)")

    @property
    def dtype(self) -> np.dtype:
        """dtype of the network's input and output."""
        return np.dtype(self._impl.dtype)

    def net_input_shape(self, batch: Optional[int] = None) -> tuple:
        return tuple(self._impl.net_input_shape(self.max_batch if batch is None else batch))

    def net_output_shape(self, batch: Optional[int] = None) -> tuple:
        return tuple(self._impl.net_output_shape(self.max_batch if batch is None else batch))

    @property
    def net_input(self) -> DeviceView:
        """(max_batch, 2, T, F) network input; the first `batch` segments are valid in a callback."""
        return DeviceView(self._impl.net_input_ptr, self.net_input_shape(), self.dtype, self.stream, self)

    @property
    def net_output(self) -> DeviceView:
        """(max_batch, n_stems, 2, T, F) network output, to be written by the callback."""
        return DeviceView(self._impl.net_output_ptr, self.net_output_shape(), self.dtype, self.stream, self)

    # --- the network
    def set_network(self, network: Optional[Callable[[int], None]]) -> None:
        """network(batch) enqueues on `stream` the network from net_input to net_output for `batch` segments."""
        if network is not None and not callable(network):
            raise TypeError("network must be callable(batch) or None")
        self._network = network

    def use_known_network(self, a, b) -> None:
        """Built-in test network (used while no network is set): estimates_s = x * sigmoid(a_s * x + b_s)."""
        a = [float(v) for v in a]
        b = [float(v) for v in b]
        with _errors():
            self._impl.use_known_network(a, b)

    # --- running
    def separate(self, waveform, out=None):
        """(L, 2) waveform at 44.1 kHz -> (n_stems, L, 2) float32 stems (NumPy, or DeviceArray for device input)."""
        m = _module
        cai = _cuda_array_interface(waveform)
        keep = []  # objects whose memory the native call uses
        if cai is None:
            from .dsp import to_stereo

            x = np.asarray(waveform)
            if not np.issubdtype(x.dtype, np.floating):
                raise InputError(f"waveform must be floating point, got {x.dtype}")
            x = np.ascontiguousarray(to_stereo(x), dtype=np.float32)
            if not np.isfinite(x).all():
                raise InputError("waveform contains NaN or Inf")
            keep.append(x)
            L, x_ptr, x_dev, producer = x.shape[0], x.ctypes.data, False, None
            x_host = self._host_mode(m, x)
        else:
            obj, producer = _device_stereo(waveform)
            cai = obj.__cuda_array_interface__
            shape = tuple(cai["shape"])
            if len(shape) != 2 or shape[1] != 2 or cai["typestr"] != "<f4" or not _contiguous(cai, 4):
                raise InputError(f"a device waveform must be a contiguous (samples, 2) float32 array, got shape "
                                 f"{shape} {cai['typestr']} (CuPy and PyTorch inputs are converted)")
            if producer is None:
                s = cai.get("stream")
                producer = int(s) if s is not None else None
            keep.append(obj)
            L, x_ptr, x_dev, x_host = shape[0], int(cai["data"][0]), True, _STAGE
        S = self.n_stems
        out_host = _STAGE
        if out is None:
            with _errors():
                if x_dev:
                    out = m.DeviceArray([S, L, 2])
                elif L == 0 or not self.pinned_output:
                    out = np.empty((S, L, 2), np.float32)
                else:
                    try:  # page-locked: the stems are DMA'd straight into the array handed back
                        out, out_host = m.empty_pinned([S, L, 2]), _DIRECT
                    except m.NativeError:  # no page-locked memory to be had: pageable, staged
                        out = np.empty((S, L, 2), np.float32)
        elif _cuda_array_interface(out) is None and isinstance(out, np.ndarray):
            out_host = self._host_mode(m, out)
        out_cai = _cuda_array_interface(out)
        if out_cai is None:
            if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (S, L, 2)
                    or not out.flags.c_contiguous or not out.flags.writeable):
                raise InputError(f"out must be a writeable C-contiguous float32 array of shape {(S, L, 2)}")
            out_ptr, out_dev = out.ctypes.data, False
        else:
            if (tuple(out_cai["shape"]) != (S, L, 2) or out_cai["typestr"] != "<f4" or not _contiguous(out_cai, 4)
                    or out_cai["data"][1]):
                raise InputError(f"out must be a writeable contiguous float32 device array of shape {(S, L, 2)}")
            out_ptr, out_dev = int(out_cai["data"][0]), True
            if producer is None:  # order the pipeline after the caller's work on `out`
                if type(out).__module__.startswith("torch"):
                    import torch

                    producer = torch.cuda.current_stream(out.device).cuda_stream
                elif out_cai.get("stream") is not None:
                    producer = int(out_cai["stream"])
        if L == 0:
            return out
        with _errors():
            self._impl.separate(x_ptr, L, x_dev, out_ptr, out_dev, producer, self._network, x_host, out_host)
        del keep
        return out

    def _host_mode(self, m, a: np.ndarray) -> int:
        """Direct for page-locked arrays, else register for the call (register_host) or stage."""
        if a.size == 0:
            return _STAGE
        if m.is_page_locked(a.ctypes.data, a.nbytes):
            return _DIRECT
        return _REGISTER if self.register_host else _STAGE

    def synchronize(self) -> None:
        with _errors():
            self._impl.synchronize()

    # --- test and debugging helpers (synchronous)
    def download_net_input(self, batch: Optional[int] = None) -> np.ndarray:
        with _errors():
            return self._impl.copy_net_input_to_host(self.max_batch if batch is None else batch)

    def upload_net_output(self, estimates: np.ndarray) -> None:
        with _errors():
            self._impl.copy_net_output_from_host(np.ascontiguousarray(estimates, dtype=self.dtype))

    def run_known_network(self, batch: int) -> None:
        with _errors():
            self._impl.run_known_network(batch)

    def __repr__(self) -> str:
        return (f"Pipeline(n_stems={self.n_stems}, F={self.F}, T={self.T}, max_batch={self.max_batch}, "
                f"dtype={self.dtype.name}, mask_extension={self.mask_extension!r})")

