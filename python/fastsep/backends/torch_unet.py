"""The U-Nets of all stems in PyTorch, generated from models/unet_spec.py (the same description as the ONNX export).

Two ways to run it, one module:

* host: ``TorchRunner(cfg, variables).run(magnitudes)`` (NumPy in, NumPy out), so fastsep.pipeline.HostPipeline can
  drive it on the CPU like any runner;
* device: ``TorchRunner(cfg, variables, device="cuda").attach(pipeline)`` makes it the network of a
  fastsep.native.Pipeline: each chunk's callback reads the pipeline's net_input and writes its net_output in
  place, on the pipeline's CUDA stream (torch.cuda.ExternalStream), with no host synchronisation; optionally
  replayed from one CUDA graph per batch size.

Built for speed, with the same function:

* weights folded exactly at load time (unet_spec.fold, float64 then one cast): each decoder BN's scale goes into
  the next layer's input channels; what cannot fold (encoder BN, decoder shift) is one scale/shift next to the
  activation, which ``compile=True`` (torch.compile) fuses into one elementwise kernel;
* ``channels_last=True`` runs every layer in NHWC (tensor-core convolutions); the I/O stays (B, 2, T, F) and
  (B, S, 2, T, F), converted at the edges;
* ``stems="loop"`` (DEFAULT_STEMS_MODE) runs one U-Net after the other; ``stems="grouped"`` runs all stems' U-Nets
  as one network of grouped convolutions (one kernel launch per layer for every stem). On the CPU the loop is
  faster (2stems, 1 segment: 4.0 s vs 6.5 s on 2 cores); benchmarks/gpu_throughput.py compares them on a GPU;
* precision fp32 (TF32 off), fp16 (GPU) or bf16; the mask head always runs in float32.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np

from ..errors import FastsepError, ModelError
from ..models import unet_spec as spec
from ..models.config import ModelConfig
from ..models.precision import PRECISIONS
from ..optional import require

DEFAULT_STEMS_MODE = "loop"
LAYER_SPANS = False  # benchmarks/gpu_throughput.py --profile: name each layer in torch.profiler (eager runs)


def import_torch():
    return require("torch", extra="torch", what="the PyTorch backend")


def _activation(torch, kind: str, inplace: bool):
    """The activation as a function of one tensor (in place when asked: it then returns its argument)."""
    F = torch.nn.functional
    if kind == "ReLU":
        return F.relu_ if inplace else F.relu
    if kind == "ELU":
        return (lambda x: F.elu_(x, spec.ELU_ALPHA)) if inplace else (lambda x: F.elu(x, spec.ELU_ALPHA))
    return lambda x: F.leaky_relu(x, spec.LEAKY_RELU_ALPHA, inplace=inplace)


def _span(torch, name: str):
    return torch.profiler.record_function(name) if LAYER_SPANS else contextlib.nullcontext()


def _stack(arrays: list[np.ndarray], torch, per_channel: bool = False):
    """Stems' arrays stacked along dim 0 (their output channels, or a transposed kernel's input channels), as a
    float64 tensor; per-channel vectors shaped (1, C, 1, 1) to broadcast over NCHW."""
    t = torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays, axis=0)))
    return t.view(1, -1, 1, 1) if per_channel else t


def _make_group(torch, unets: list[spec.UNet], folded: list[spec.FoldedUNet]):
    """The U-Nets of some stems as one module of grouped convolutions: (B, C, T, F) -> logits (B, G*C, T, F)."""
    from torch import nn

    F = torch.nn.functional
    G = len(unets)
    u = unets[0]  # every stem has the same layers; only the weights differ

    def pad4(c: spec.Conv):
        return (c.pad[0], c.pad[1], c.pad[0], c.pad[1])

    class Group(nn.Module):
        def __init__(self):
            super().__init__()
            for k, e in enumerate(u.encoder):
                self.register_buffer(f"enc{k}_w", _stack([f.encoder[k].kernel for f in folded], torch))
                self.register_buffer(f"enc{k}_b", _stack([f.encoder[k].bias for f in folded], torch))
                if e.feeds_next:
                    self.register_buffer(f"enc{k}_scale", _stack([f.encoder[k].scale for f in folded], torch, True))
                    self.register_buffer(f"enc{k}_shift", _stack([f.encoder[k].shift for f in folded], torch, True))
            for k in range(len(u.decoder)):
                self.register_buffer(f"dec{k}_w", _stack([f.decoder[k].kernel for f in folded], torch))
                self.register_buffer(f"dec{k}_b", _stack([f.decoder[k].bias for f in folded], torch))
                self.register_buffer(f"dec{k}_shift", _stack([f.decoder[k].shift for f in folded], torch, True))
                if any(f.decoder[k].scale is not None for f in folded):  # a stem whose scale could not fold
                    self.register_buffer(f"dec{k}_scale", _stack([_unfolded_scale(f.decoder[k]) for f in folded],
                                                                 torch, True))
            self.register_buffer("final_w", _stack([f.final_kernel for f in folded], torch))
            self.register_buffer("final_b", _stack([f.final_bias for f in folded], torch))
            self.enc_act = [_activation(torch, e.activation, inplace=True) for e in u.encoder]
            self.dec_act = [_activation(torch, d.activation, inplace=False) for d in u.decoder]

        def forward(self, x):
            raw, h = [], x  # raw: the encoder conv outputs, before BN (the skips)
            for k, e in enumerate(u.encoder):
                with _span(torch, f"enc{k}"):
                    raw.append(self._encode(k, e, h))
                    if e.feeds_next:
                        h = self.enc_act[k](torch.addcmul(getattr(self, f"enc{k}_shift"), raw[-1],
                                                          getattr(self, f"enc{k}_scale")))
            h = raw[u.decoder_input]
            for k, d in enumerate(u.decoder):
                with _span(torch, f"dec{k}"):
                    up = self._decode(k, d, h)
                    h = up if d.skip is None else _concat_per_stem(torch, raw[d.skip], up, G)
            with _span(torch, "final"):
                c = u.final
                if c.pad[0] == c.pad[1]:  # symmetric: the convolution pads, no padded copy
                    return F.conv2d(h, self.final_w, self.final_b, padding=c.pad[0], dilation=c.dilation, groups=G)
                return F.conv2d(F.pad(h, pad4(c)), self.final_w, self.final_b, dilation=c.dilation, groups=G)

        def _encode(self, k: int, e: spec.EncoderLayer, h):
            c = e.conv
            groups = 1 if k == 0 else G  # the first layer reads the input every stem shares: one plain conv
            return F.conv2d(F.pad(h, pad4(c)), getattr(self, f"enc{k}_w"), getattr(self, f"enc{k}_b"),
                            stride=c.stride, dilation=c.dilation, groups=groups)

        def _decode(self, k: int, d: spec.DecoderLayer, h):
            c = d.deconv
            full = F.conv_transpose2d(h, getattr(self, f"dec{k}_w"), getattr(self, f"dec{k}_b"), stride=c.stride,
                                      groups=G)
            up = self.dec_act[k](full[:, :, c.crop[0]:full.shape[2] - c.crop[1], c.crop[0]:full.shape[3] - c.crop[1]])
            scale = getattr(self, f"dec{k}_scale", None)
            if scale is None:  # the BN scale is in the next layer's weights
                return up.add_(getattr(self, f"dec{k}_shift"))
            return torch.addcmul(getattr(self, f"dec{k}_shift"), up, scale)

    return Group()


def _unfolded_scale(d: spec.FoldedDecoder) -> np.ndarray:
    return np.ones_like(d.shift) if d.scale is None else d.scale


def _concat_per_stem(torch, skip, up, G: int):
    """Per stem concat([skip, up]) along channels, stems kept as consecutive channel groups (NCHW or NHWC)."""
    if G == 1:
        return torch.cat([skip, up], dim=1)
    B, _, H, W = up.shape
    if skip.is_contiguous() and up.is_contiguous():
        return torch.cat([skip.view(B, G, -1, H, W), up.view(B, G, -1, H, W)], dim=2).view(B, -1, H, W)
    # channels_last: channels are innermost, so the stem groups are a split of the last dimension
    nhwc = [t.permute(0, 2, 3, 1).reshape(B, H, W, G, -1) for t in (skip, up)]
    return torch.cat(nhwc, dim=4).view(B, H, W, -1).permute(0, 3, 1, 2)


def _make_module(cfg: ModelConfig, variables: dict, stems: str):
    """All stems' U-Nets and the mask head: magnitudes (B, C, T, F) float32 -> estimates (B, S, C, T, F) float32.
    Buffers are float64 here: the caller casts them once to the compute dtype (one rounding of the folded
    weights)."""
    torch = import_torch()
    from torch import nn

    if stems not in ("grouped", "loop"):
        raise FastsepError(f"stems must be 'grouped' or 'loop', not {stems!r}")
    net = spec.network_spec(cfg)
    folded = [spec.fold(u, variables, np.float64) for u in net.unets]
    index_groups = [list(range(net.n_stems))] if stems == "grouped" else [[s] for s in range(net.n_stems)]

    class UNets(nn.Module):
        def __init__(self):
            super().__init__()
            self.groups = nn.ModuleList(
                _make_group(torch, [net.unets[s] for s in ix], [folded[s] for s in ix])
                for ix in index_groups)

            self.channels_last = False  # set with the buffers' format by TorchRunner

        def forward(self, x, out=None):
            """x float32 (B, C, T, F); the network runs in the buffers' dtype and memory format."""
            h = x.to(dtype=self.groups[0].enc0_w.dtype,
                     memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            logits = [g(h) for g in self.groups]
            with _span(torch, "mask"):
                logits = logits[0] if len(logits) == 1 else torch.cat(logits, dim=1)
                B, _, T, F = logits.shape
                logits = logits.float().reshape(B, net.n_stems, net.in_channels, T, F)
                if net.mask == "softmax":
                    masks = torch.softmax(logits, dim=1)
                else:
                    masks = torch.sigmoid(logits)  # exact sigmoid: no flush to zero of tiny masks
                return torch.mul(masks, x.unsqueeze(1), out=out)

    return UNets()


class TorchRunner:
    """All stems' U-Nets on PyTorch: magnitudes (B, 2, T, F) -> estimates (B, stems, 2, T, F), float32 I/O.

    precision "fp32" (TF32 off, so results stay within float32 rounding of the reference), "fp16" (GPU only) or
    "bf16": weights and convolutions in that type, the mask and the product with the input in float32.
    channels_last: NHWC layers. compile: torch.compile the network (fuses the elementwise ops; the first call of
    each batch size compiles it); a string is torch.compile's mode.
    """

    name = "torch"

    def __init__(self, cfg: ModelConfig, variables: dict[str, np.ndarray], device: str = "cpu",
                 precision: str = "fp32", stems: str | None = None, cuda_graphs: bool = False,
                 threads: Optional[int] = None, channels_last: bool = False, compile: bool | str = False):
        torch = import_torch()
        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.torch = torch
        self.cfg = cfg
        self.precision = precision
        self.device = torch.device(device)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise FastsepError("the PyTorch backend on the GPU needs a CUDA build of torch and a GPU: "
                                   "torch.cuda.is_available() is False")
        elif precision == "fp16":
            raise FastsepError("fp16 needs the GPU (device='cuda'); use fp32 or bf16 on the CPU")
        if threads and self.device.type == "cpu":
            torch.set_num_threads(int(threads))
        self.compute_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.stems_mode = stems or DEFAULT_STEMS_MODE
        self.channels_last = bool(channels_last)
        module = _make_module(cfg, variables, self.stems_mode).to(self.device, self.compute_dtype)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        module.channels_last = self.channels_last
        self.module = module.eval()
        self._net = self.module
        if compile:
            kwargs = {"mode": compile} if isinstance(compile, str) else {}
            self._net = torch.compile(self.module, dynamic=False, **kwargs)
        self.compiled = bool(compile)
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self._graphs: dict[int, object] = {}
        self._pipeline = None

    # -------------------------------------------------------------------- the computation
    def forward(self, x, out=None):
        """x (B, 2, T, F) float32 tensor on self.device -> estimates; written into `out` if given."""
        torch = self.torch
        with torch.inference_mode(), self._cudnn_flags():
            if not self.compiled:
                return self.module(x, out=out)
            y = self._net(x)  # compiled graphs take no out= (one extra copy of the estimates)
            return y if out is None else out.copy_(y)

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


def create(plan):
    """The registry's factory (backends/__init__.py): inside the CUDA pipeline where torch sees a GPU and fastsep
    was built with CUDA, else a host runner on the CPU (fp32 or bf16)."""
    torch = import_torch()
    from .. import native

    cfg, variables = plan.source.config, plan.source.weights()
    if torch.cuda.is_available() and native.available():
        gpu = native.Pipeline.from_config(cfg, max_batch=plan.batch_segments or 4, quality=plan.quality)
        runner = TorchRunner(cfg, variables, device=f"cuda:{gpu.device}", precision=plan.precision,
                             cuda_graphs=plan.cuda_graphs)
        runner.attach(gpu)
        return runner, gpu
    if plan.precision == "fp16":
        why = native.unavailable_reason() or "torch.cuda.is_available() is False"
        raise FastsepError(f"fp16 needs the GPU pipeline, which cannot run here: {why}")
    return TorchRunner(cfg, variables, precision=plan.precision, threads=plan.threads), None
