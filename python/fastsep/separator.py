"""fastsep.Separator: one object per model, reused for any number of songs."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np

from . import dsp
from .errors import FastsepError, InputError
from .models.config import ModelConfig
from .resample import StreamResampler, converted_length, resample
from .run_plan import RunPlan, resolve_plan


def _as_float_waveform(x) -> np.ndarray:
    """Validate and convert user audio to (n, channels) float32 in [-1, 1] scale."""
    if hasattr(x, "__cuda_array_interface__"):
        raise InputError("device arrays need the GPU pipeline: use a .engine model, backend='tensorrt' or "
                         "backend='torch' on a machine with a GPU")
    x = np.asarray(x)
    if not x.dtype.isnative:  # big-endian samples are samples: their native-order twin
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = x.astype(np.float32) / 2147483648.0
    elif x.dtype in (np.float32, np.float64, np.float16):
        x = x.astype(np.float32, copy=False)
    else:
        raise InputError(f"unsupported sample type {x.dtype}: give float32/float64 or int16/int32 samples")
    if x.ndim not in (1, 2):
        raise InputError(f"waveform must be (samples,) or (samples, channels), got shape {x.shape}")
    if x.ndim == 2 and x.shape[0] <= 8 < x.shape[1]:
        raise InputError(f"waveform of shape {x.shape} looks like (channels, samples): pass x.T, (samples, channels)")
    if x.shape[0] == 0:
        raise InputError("waveform is empty (zero samples)")
    if not np.isfinite(x).all():
        raise InputError("waveform contains NaN or Inf samples")
    return x


class Separator:
    """Separate songs into the stems of a Spleeter model.

    model: a stock name ("2stems", "4stems-16kHz", ...; downloaded on first use), a Spleeter checkpoint folder, a
    Spleeter JSON config (its model_dir names the checkpoint), a fastsep model file (.safetensors), an ONNX file
    exported by fastsep, or a fastsep engine file (.engine, built by `fastsep build`). config: a stock config name
    or a Spleeter JSON file, needed only where the model does not say it (e.g. "2stems-16kHz" on the 2stems
    weights).

    backend: "auto" (an .engine file runs on TensorRT; anything else on the first installed exact CPU backend) or a
    name from fastsep.backends.REGISTRY (`fastsep backends` lists them and what runs here): "onnxruntime" (CPU),
    "torch" (the GPU pipeline where torch sees a GPU and fastsep was built with CUDA, else the CPU), "tensorrt"
    (GPU; builds an engine on first use and caches it).
    precision: "fp32", "fp16" or "bf16", as the backend offers (default: the backend's first; fp32 is exact).
    batch_segments: 512-frame segments per network call (default 1 on the CPU, where 2 is no faster and needs
    200 MB more; 4 on the GPU).
    mwf: Spleeter's multichannel Wiener filter (`--mwf`, norbert's one EM iteration) instead of ratio masks; CPU
    pipeline only. It needs sums over the whole song before any output: `stream` spills the network's estimates
    (stems x 8 KB per STFT frame, about 0.35 MB per second of audio per stem) and the input to unnamed temporary
    files in `spill_dir` (default: the system's temp folder) and reads them back, so its memory stays flat.
    overlap, full_band: beyond Spleeter (docs/spec.md §12), in the CPU and the GPU pipeline. overlap in [0, 0.9]:
    segments overlap by that fraction and are cross-faded, so no segment boundary remains (network time x
    1 / (1 - overlap); 0.25 is the measured choice, fastsep.quality_options.RECOMMENDED_OVERLAP). full_band: masks
    above the network's bins (11 kHz for 2stems) are the mean of each frame's masks instead of 0, so the stems sum to
    the mix. Both off: Spleeter's exact output. On the CPU, overlap (and full band with mwf) runs on the whole song at
    once (memory as run()); full band alone streams.

    model may also be a fastsep.run_plan.RunPlan (resolve_plan(...) takes the arguments above): the Separator runs
    it as it is, and of the other arguments only spill_dir applies.

    One Separator holds its network and buffers: reuse it for any number of songs.
    """

    def __init__(self, model: str | os.PathLike, config: str | None = None, backend: str = "auto",
                 batch_segments: int | None = None, threads: int | None = None, precision: str | None = None,
                 cuda_graphs: bool = False, mwf: bool = False, overlap: float = 0.0, full_band: bool = False,
                 spill_dir: str | os.PathLike | None = None):
        if isinstance(model, RunPlan):
            plan = model
        else:
            plan = resolve_plan(model, config, backend=backend, precision=precision, overlap=overlap,
                                full_band=full_band, mwf=mwf, threads=threads, batch_segments=batch_segments,
                                cuda_graphs=cuda_graphs)
        self.plan = plan
        self._runner, self._gpu = plan.backend.create(plan)
        self.backend = plan.backend.name
        self.precision = plan.precision
        self.source = plan.source
        self.quality = plan.quality
        self.config: ModelConfig = plan.source.config
        if self._gpu is not None:
            self._pipeline = self._gpu
        else:
            from .pipeline import HostPipeline

            self._pipeline = HostPipeline(self.config, self._runner, plan.batch_segments or 1, mwf=plan.mwf,
                                          spill_dir=spill_dir, quality=plan.quality, threads=plan.threads)

    @property
    def spill_dir(self):
        """Folder of the Wiener filter's unnamed temporary files (None: the system's temp folder)."""
        return getattr(self._pipeline, "spill_dir", None)

    @spill_dir.setter
    def spill_dir(self, folder) -> None:
        if self._gpu is None:
            self._pipeline.spill_dir = folder

    @property
    def device(self) -> str:
        """Where the separation runs: "cpu" or "cuda:<n>"."""
        return "cpu" if self._gpu is None else f"cuda:{self._gpu.device}"

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.config.instruments

    def run(self, x, sample_rate: int = 44100,
            progress: Callable[[int, int], None] | None = None) -> dict:
        """Separate one song: (samples, channels) or (samples,) audio at `sample_rate` ->
        {instrument: (samples, 2) float32 at `sample_rate`}, in config order.

        With a GPU backend, a device array (PyTorch CUDA tensor, CuPy array, anything with
        __cuda_array_interface__) at the model's sample rate is read in place and the stems come back as device
        arrays of the same kind (CuPy for other kinds). `progress` is only called by the CPU pipeline."""
        if self._gpu is not None and _is_device_array(x):
            return self._run_device(x, sample_rate)
        x = _as_float_waveform(x)
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        n = x.shape[0]
        x = dsp.to_stereo(x)
        rate = self.config.sample_rate
        if sample_rate != rate:
            x = resample(x, sample_rate, rate)
        x = np.ascontiguousarray(x)
        if self._gpu is not None:
            stems = self._gpu.separate(x)  # (stems, L, 2)
            if progress is not None:
                total = dsp.n_segments(x.shape[0], self.config.T, self.config.frame_length, self.config.frame_step)
                progress(total, total)
        else:
            stems = self._pipeline.separate(x, progress)
        out = {}
        for name, y in zip(self.config.instruments, stems):
            out[name] = resample(y, rate, sample_rate, n) if sample_rate != rate else y
        return out

    def stream(self, blocks: Iterable, sample_rate: int = 44100, *, output_rate: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               window_segments: int = 16) -> Iterator[dict]:
        """Separate one song given as consecutive blocks of audio, in bounded memory.

        blocks: (n, channels) or (n,) arrays at `sample_rate` (any sizes, as for `run`) -> yields
        {instrument: (m, 2) float32 block at `output_rate` (default: `sample_rate`)} as soon as samples are final;
        all stems' blocks have the same length and add up to the input's length at the output rate. The result
        equals `run` on the whole song (bit-exact on the CPU). Memory depends on the model and the block size,
        never on the song's length. `progress(done, total)` counts segments (total 0 until the input ends).
        With a GPU backend the song goes through the GPU pipeline in windows of `window_segments` segments
        (each window recomputes two segments of its neighbours; with overlap or full band, one window)."""
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        out_rate = sample_rate if output_rate is None else output_rate
        if not isinstance(out_rate, (int, np.integer)) or out_rate <= 0:
            raise InputError(f"output_rate must be a positive integer, got {output_rate!r}")
        rate = self.config.sample_rate
        names = self.config.instruments
        to_model = StreamResampler(sample_rate, rate, 2)
        to_output = [StreamResampler(rate, out_rate, 2) for _ in names]
        received = 0

        def model_blocks():
            nonlocal received
            for block in blocks:
                x = np.asarray(block)
                if x.shape[0] == 0:
                    continue
                x = dsp.to_stereo(_as_float_waveform(x))
                received += x.shape[0]
                y = to_model.process(x)
                if y.shape[0]:
                    yield y
            if received == 0:
                raise InputError("waveform is empty (zero samples)")
            to_model.length = converted_length(received, sample_rate, rate)
            for r in to_output:
                r.length = converted_length(received, sample_rate, out_rate)
            yield to_model.process(np.zeros((0, 2), np.float32), last=True)

        if self._gpu is not None and self.quality.spleeter_exact:
            from .pipeline import stream_windows

            stems = stream_windows(self._gpu.separate, self.config, model_blocks(), window_segments)
        elif self._gpu is not None:  # overlapped segments follow one schedule from the song's start: one window
            stems = [list(self._gpu.separate(np.ascontiguousarray(np.concatenate(list(model_blocks())))))]
        else:
            stems = self._pipeline.stream(model_blocks(), progress)
        for parts in stems:
            out = {name: r.process(y) for name, r, y in zip(names, to_output, parts)}
            if next(iter(out.values())).shape[0]:
                yield out
        last = {name: r.process(np.zeros((0, 2), np.float32), last=True) for name, r in zip(names, to_output)}
        if next(iter(last.values())).shape[0]:
            yield last

    def _run_device(self, x, sample_rate) -> dict:
        if sample_rate != self.config.sample_rate:
            raise InputError(f"device input must be at the model's sample rate ({self.config.sample_rate} Hz): "
                             "resample it first, or pass host (NumPy) audio")
        shape = tuple(x.shape)
        if len(shape) not in (1, 2) or shape[0] == 0:
            raise InputError(f"waveform must be non-empty (samples,) or (samples, channels), got shape {shape}")
        S, L = self.config.n_stems, shape[0]
        mod = type(x).__module__
        if mod.startswith("torch"):
            import torch

            out = torch.empty((S, L, 2), dtype=torch.float32, device=x.device)
        else:
            try:
                import cupy
            except ImportError:
                raise FastsepError("device output needs CuPy or PyTorch: pass a torch CUDA tensor or a CuPy "
                                   "array, or install cupy") from None
            with cupy.cuda.Device(self._gpu.device):
                out = cupy.empty((S, L, 2), dtype=cupy.float32)
        self._gpu.separate(x, out=out)
        return {name: out[i] for i, name in enumerate(self.config.instruments)}


def _is_device_array(x) -> bool:
    try:
        x.__cuda_array_interface__
        return True
    except Exception:  # attribute missing, or a torch CPU tensor raising
        return False
