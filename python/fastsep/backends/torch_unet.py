"""The U-Nets of all stems in PyTorch (SPLEETER.md section 3), from the same weights as the ONNX export.

Two ways to run it, one module:

* host: ``TorchRunner(cfg, variables).run(magnitudes)`` (NumPy in, NumPy out), so fastsep.pipeline.HostPipeline can
  drive it on the CPU like any runner;
* device: ``TorchRunner(cfg, variables, device="cuda").attach(pipeline)`` makes it the network of a
  fastsep.native.Pipeline: each chunk's callback reads the pipeline's net_input and writes its net_output in
  place, on the pipeline's CUDA stream (torch.cuda.ExternalStream), with no host synchronisation; optionally
  replayed from one CUDA graph per batch size.

Layouts (TensorFlow -> PyTorch, SPLEETER.md section 4): Conv2d weight = k.transpose(3, 2, 0, 1); ConvTranspose2d
weight (in, out, kh, kw) = k.transpose(3, 2, 0, 1). 'same' stride-2 convs pad 1 before / 2 after; 'same' stride-2
transposed convs keep [1, 1 + 2n) of the full output; the final 4x4 dilation-2 conv pads 3 on each side.

``stems="loop"`` (DEFAULT_STEMS_MODE) runs one U-Net after the other; ``stems="grouped"`` runs all stems' U-Nets as
one network of grouped convolutions (one kernel launch per layer for every stem). Both compute the same thing; on
the CPU the loop is faster (2stems, 1 segment: 4.0 s vs 6.5 s on 2 cores); benchmarks/gpu_throughput.py
--stems-modes compares them on a GPU.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np

from ..errors import FastsepError, MissingDependencyError, ModelError
from ..models.config import ModelConfig
from ..models.weights import layer_names

BN_EPSILON = 1e-3  # Keras default
DEFAULT_STEMS_MODE = "loop"


def import_torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "torch", "the PyTorch backend") from None
    return torch


def _bn_affine(w: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as y = x * scale + shift (float64 folding, then float32)."""
    g, b, m, v = (w[f"{name}/{s}"].astype(np.float64) for s in ("gamma", "beta", "moving_mean", "moving_variance"))
    scale = g / np.sqrt(v + BN_EPSILON)
    return scale.astype(np.float32), (b - m * scale).astype(np.float32)


def _stacked_params(cfg: ModelConfig, w: dict) -> dict[str, np.ndarray]:
    """PyTorch-layout parameters of every layer, stems stacked along the output channels (grouped layout)."""
    S = cfg.n_stems
    names = [layer_names(cfg, s) for s in range(S)]
    p = {}

    def cat(key_fn, transform=lambda a: a):
        return np.ascontiguousarray(np.concatenate([transform(w[key_fn(n)]) for n in names], axis=0))

    for k in range(6):
        p[f"conv{k}.weight"] = cat(lambda n: n["conv"][k] + "/kernel", lambda a: a.transpose(3, 2, 0, 1))
        p[f"conv{k}.bias"] = cat(lambda n: n["conv"][k] + "/bias")
        # ConvTranspose2d with groups: weight (in_total, out_per_group, kh, kw): stems stacked along "in"
        p[f"deconv{k}.weight"] = cat(lambda n: n["deconv"][k] + "/kernel", lambda a: a.transpose(3, 2, 0, 1))
        p[f"deconv{k}.bias"] = cat(lambda n: n["deconv"][k] + "/bias")
        if k < 5:
            aff = [_bn_affine(w, n["enc_bn"][k]) for n in names]
            p[f"enc_bn{k}.scale"] = np.concatenate([a[0] for a in aff])
            p[f"enc_bn{k}.shift"] = np.concatenate([a[1] for a in aff])
        aff = [_bn_affine(w, n["dec_bn"][k]) for n in names]
        p[f"dec_bn{k}.scale"] = np.concatenate([a[0] for a in aff])
        p[f"dec_bn{k}.shift"] = np.concatenate([a[1] for a in aff])
    p["final.weight"] = cat(lambda n: n["final"] + "/kernel", lambda a: a.transpose(3, 2, 0, 1))
    p["final.bias"] = cat(lambda n: n["final"] + "/bias")
    return p


def _make_module(cfg: ModelConfig, variables: dict, stems: str):
    torch = import_torch()
    import torch.nn.functional as F
    from torch import nn

    if stems not in ("grouped", "loop"):
        raise FastsepError(f"stems must be 'grouped' or 'loop', not {stems!r}")
    S = cfg.n_stems
    filters = cfg.conv_n_filters
    params = _stacked_params(cfg, variables)

    def activation(kind: str):
        if kind == "ReLU":
            return F.relu
        if kind == "ELU":
            return F.elu
        return lambda x: F.leaky_relu(x, 0.2)

    act_c, act_d = activation(cfg.conv_activation), activation(cfg.deconv_activation)
    dec_out = (filters[4], filters[3], filters[2], filters[1], filters[0], 1)

    class UNets(nn.Module):
        """All stems' U-Nets: (B, 2, T, F) -> logits (B, S, 2, T, F)."""

        def __init__(self):
            super().__init__()
            for name, value in params.items():
                self.register_buffer(name.replace(".", "_"), torch.from_numpy(value.copy()))
            self.grouped = stems == "grouped"

        def p(self, name):
            return getattr(self, name.replace(".", "_"))

        def _slice(self, name, s, n):
            return self.p(name)[s * n:(s + 1) * n]

        @staticmethod
        def _affine(x, scale, shift):
            return torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None])

        def _net(self, x, s: Optional[int]):
            """One stem's U-Net (s) or all stems grouped (s None): (B, C, T, F) -> logits (B, S or 1, 2, T, F)."""
            G = S if s is None else 1

            def W(name, n):  # parameter rows of this stem (n rows per stem), or all of them
                return self.p(name) if s is None else self._slice(name, s, n)

            skips, h = [], x
            for k in range(6):
                groups = 1 if k == 0 else G  # the first conv reads the shared input: one ungrouped conv
                c = F.conv2d(F.pad(h, (1, 2, 1, 2)), W(f"conv{k}.weight", filters[k]), W(f"conv{k}.bias", filters[k]),
                             stride=2, groups=groups)
                skips.append(c)
                if k < 5:  # the 6th encoder BN + activation are unused in Spleeter
                    h = act_c(self._affine(c, W(f"enc_bn{k}.scale", filters[k]), W(f"enc_bn{k}.shift", filters[k])))
            h = skips[5]
            for k in range(6):
                cin = filters[5] if k == 0 else 2 * dec_out[k - 1]
                u = F.conv_transpose2d(h, W(f"deconv{k}.weight", cin), W(f"deconv{k}.bias", dec_out[k]), stride=2,
                                       groups=G)[:, :, 1:-2, 1:-2]
                u = self._affine(act_d(u), W(f"dec_bn{k}.scale", dec_out[k]), W(f"dec_bn{k}.shift", dec_out[k]))
                if k < 5:
                    # per stem: concat([skip, up]) along channels, stems kept as channel groups
                    B, _, Hh, Ww = u.shape
                    sk = skips[4 - k]
                    h = torch.cat([sk.view(B, G, -1, Hh, Ww), u.view(B, G, -1, Hh, Ww)], dim=2).view(B, -1, Hh, Ww)
                else:
                    h = u
            logits = F.conv2d(h, W("final.weight", 2), W("final.bias", 2), padding=3, dilation=2, groups=G)
            B, _, Tt, Ff = logits.shape
            return logits.view(B, G, 2, Tt, Ff)

        def forward(self, x):
            if self.grouped:
                return self._net(x, None)
            return torch.cat([self._net(x, s) for s in range(S)], dim=1)

    return UNets()


class TorchRunner:
    """All stems' U-Nets on PyTorch: magnitudes (B, 2, T, F) -> estimates (B, stems, 2, T, F), float32 I/O.

    precision "fp32" (TF32 off, so results stay within float32 rounding of the reference) or "fp16" (weights and
    convolutions in half precision, the mask and the product with the input in float32).
    """

    name = "torch"

    def __init__(self, cfg: ModelConfig, variables: dict[str, np.ndarray], device: str = "cpu",
                 precision: str = "fp32", stems: str | None = None, cuda_graphs: bool = False,
                 threads: Optional[int] = None):
        torch = import_torch()
        if precision not in ("fp32", "fp16"):
            raise ModelError(f"precision must be fp32 or fp16, not {precision!r}")
        self.torch = torch
        self.cfg = cfg
        self.precision = precision
        self.device = torch.device(device)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise FastsepError("the PyTorch backend on the GPU needs a CUDA build of torch and a GPU: "
                                   "torch.cuda.is_available() is False")
        elif precision == "fp16":
            raise FastsepError("fp16 needs the GPU (device='cuda'); use fp32 on the CPU")
        if threads and self.device.type == "cpu":
            torch.set_num_threads(int(threads))
        self.compute_dtype = torch.float16 if precision == "fp16" else torch.float32
        self.stems_mode = stems or DEFAULT_STEMS_MODE
        module = _make_module(cfg, variables, self.stems_mode).to(self.device, self.compute_dtype)
        self.module = module.eval()
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self._graphs: dict[int, object] = {}
        self._pipeline = None

    # -------------------------------------------------------------------- the computation
    def forward(self, x, out=None):
        """x (B, 2, T, F) float32 tensor on self.device -> estimates; written into `out` if given."""
        torch = self.torch
        with torch.inference_mode(), self._cudnn_flags():
            logits = self.module(x.to(self.compute_dtype))
            if self.cfg.model_type == "softmax_unet":
                masks = torch.softmax(logits.float(), dim=1)
            else:
                masks = torch.sigmoid(logits.float())  # exact sigmoid, no flush to zero of tiny masks
            return torch.mul(masks, x.unsqueeze(1), out=out)

    def _cudnn_flags(self):
        """cuDNN autotuning on; fp32 means fp32, so no TF32 tensor-core rounding (parity at > 60 dB). Scoped to
        our calls: torch's process-wide switches are left as the user set them."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return _cudnn_switches(self.torch.backends.cudnn, benchmark=True, allow_tf32=self.precision != "fp32")

    def run(self, magnitudes: np.ndarray) -> np.ndarray:
        """Host runner (HostPipeline): NumPy (B, 2, T, F) float32 -> NumPy (B, S, 2, T, F) float32."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(magnitudes, dtype=np.float32)).to(self.device)
        return self.forward(x).cpu().numpy()

    # -------------------------------------------------------------------- inside the native GPU pipeline
    def attach(self, pipeline) -> None:
        """Become the network of a fastsep.native.Pipeline (float32 I/O): tensors over its net_input/net_output
        buffers are made once; each chunk enqueues on the pipeline's stream."""
        torch = self.torch
        if self.device.type != "cuda":
            raise FastsepError("attach() needs the runner on the GPU (device='cuda')")
        if np.dtype(pipeline.dtype) != np.float32:
            raise FastsepError("the PyTorch runner expects a float32 pipeline (it casts to fp16 itself)")
        if pipeline.n_stems != self.cfg.n_stems or pipeline.F != self.cfg.F or pipeline.T != self.cfg.T:
            raise FastsepError("pipeline and network configurations differ")
        dev = torch.device("cuda", pipeline.device)
        if dev.index != (self.device.index if self.device.index is not None else torch.cuda.current_device()):
            raise FastsepError(f"pipeline on cuda:{dev.index}, runner on {self.device}")
        self._net_in = device_tensor(torch, pipeline.net_input, dev)
        self._net_out = device_tensor(torch, pipeline.net_output, dev)
        self._stream = torch.cuda.ExternalStream(pipeline.stream, device=dev)
        self._graphs.clear()
        self._pipeline = pipeline
        pipeline.set_network(self._network)

    def _network(self, batch: int) -> None:
        torch = self.torch
        with torch.cuda.stream(self._stream):
            if not self.cuda_graphs:
                self.forward(self._net_in[:batch], out=self._net_out[:batch])
                return
            graph = self._graphs.get(batch)
            if graph is None:
                graph = self._capture(batch)
            graph.replay()

    def _capture(self, batch: int):
        """One CUDA graph per batch size, reading/writing the pipeline's buffers in place."""
        torch = self.torch
        x, y = self._net_in[:batch], self._net_out[:batch]
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(self._stream)
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuDNN autotuning and allocator state before capture
                self.forward(x, out=y)
        self._stream.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            self.forward(x, out=y)
        self._stream.wait_stream(side)
        self._graphs[batch] = graph
        return graph


@contextlib.contextmanager
def _cudnn_switches(cudnn, **values):
    """Set torch.backends.cudnn attributes for the duration of a call, then restore them (any torch version)."""
    saved = {k: getattr(cudnn, k) for k in values}
    for k, v in values.items():
        if saved[k] != v:
            setattr(cudnn, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if getattr(cudnn, k) != v:
                setattr(cudnn, k, v)


class _CudaArray:
    """A bare __cuda_array_interface__ (no stream: ordering is the caller's business)."""

    def __init__(self, ptr: int, shape: tuple, typestr: str):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (int(ptr), False),
                                         "strides": None, "version": 3, "stream": None}


def device_tensor(torch, view, device):
    """A torch tensor over a fastsep.native.DeviceView's memory (no copy, no stream synchronisation)."""
    t = torch.as_tensor(_CudaArray(view.ptr, view.shape, np.dtype(view.dtype).str), device=device)
    if t.data_ptr() != view.ptr:
        raise FastsepError("torch copied the pipeline buffer instead of wrapping it")
    return t


def create(source, options):
    """The registry's factory (backends/__init__.py): inside the CUDA pipeline where torch sees a GPU and fastsep
    was built with CUDA, else a host runner on the CPU (fp32 only)."""
    torch = import_torch()
    from .. import native

    cfg, variables = source.config, source.weights()
    if torch.cuda.is_available() and native.available():
        gpu = native.Pipeline.from_config(cfg, max_batch=options.batch_segments or 4)
        runner = TorchRunner(cfg, variables, device=f"cuda:{gpu.device}", precision=options.precision,
                             cuda_graphs=options.cuda_graphs)
        runner.attach(gpu)
        return runner, gpu
    if options.precision != "fp32":
        why = native.unavailable_reason() or "torch.cuda.is_available() is False"
        raise FastsepError(f"{options.precision} needs the GPU pipeline, which cannot run here: {why}")
    return TorchRunner(cfg, variables, threads=options.threads), None
