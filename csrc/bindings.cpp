// pybind11 bindings: the only file of the core that includes pybind11.
//
// Compiled twice:
//   FASTSEP_NATIVE_MODULE    fastsep._native: the CUDA pipeline (cuFFT + kernels.cu)
//   FASTSEP_HOST_DSP_MODULE  fastsep._host_dsp: the dsp_math.cuh element functions in host loops, and in its
//                            submodule `emulated` the same Pipeline class built against a host emulation of the
//                            CUDA runtime and cuFFT (csrc/testing): the chunk loop, staging and plans run in CI.
// python/fastsep/native.py wraps _native and turns its exceptions into fastsep.FastsepError subclasses.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fastsep/cuda_raii.hpp"
#include "fastsep/dsp_math.cuh"
#include "fastsep/error.hpp"
#include "fastsep/pipeline.hpp"
#include "fastsep/sizes.hpp"

#if defined(FASTSEP_HOST_DSP_MODULE)
#include "fastsep/host_dsp.hpp"
#elif !defined(FASTSEP_NATIVE_MODULE)
#error "define FASTSEP_HOST_DSP_MODULE or FASTSEP_NATIVE_MODULE"
#endif

namespace py = pybind11;
using fastsep::InvalidArgument;
namespace dsp = fastsep::dsp;

namespace {

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using c64_array = py::array_t<std::complex<float>, py::array::c_style | py::array::forcecast>;

void require_shape(const py::array& a, std::vector<int64_t> shape, const char* name) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
    if (!ok) {
        std::string want = "(";
        for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
        throw InvalidArgument(std::string(name) + ": expected shape " + want + ")");
    }
}

// A Python integer narrowed to int within [lo, hi]: a one-line ValueError instead of an overflow or a division by
// zero further down.
int to_int(const char* name, int64_t value, int64_t lo = 1, int64_t hi = std::numeric_limits<int>::max()) {
    return static_cast<int>(fastsep::require_range(name, value, lo, hi));
}

dsp::MaskExtension parse_extension(const std::string& s) {
    if (s == "zeros") return dsp::MaskExtension::Zeros;
    if (s == "average") return dsp::MaskExtension::Average;
    throw InvalidArgument("mask_extension must be 'zeros' or 'average', got '" + s + "'");
}

// Module-local translators: both extension modules define fastsep::Error, and with hidden visibility a global
// translator of one module could catch the other's exceptions.
void register_errors(py::module_& m) {
    auto& native_error = py::register_local_exception<fastsep::Error>(m, "NativeError", PyExc_RuntimeError);
    py::register_local_exception<fastsep::InvalidArgument>(m, "InvalidArgument", PyExc_ValueError);
    py::register_local_exception<fastsep::CudaError>(m, "CudaError", native_error.ptr());
}

}  // namespace

// ================================================================================================ pipeline bindings

namespace {

// ------------------------------------------------------------------------------------------ DLPack (v0.8 ABI)
namespace dl {
struct Device {
    int32_t device_type;  // kDLCUDA = 2
    int32_t device_id;
};
struct DataType {
    uint8_t code;  // kDLFloat = 2
    uint8_t bits;
    uint16_t lanes;
};
struct Tensor {
    void* data;
    Device device;
    int32_t ndim;
    DataType dtype;
    int64_t* shape;
    int64_t* strides;
    uint64_t byte_offset;
};
struct ManagedTensor {
    Tensor dl_tensor;
    void* manager_ctx;
    void (*deleter)(ManagedTensor*);
};
constexpr int32_t kDLCUDA = 2;
constexpr uint8_t kDLFloat = 2;
}  // namespace dl

// Owning float32 device array returned to Python: exposes __cuda_array_interface__ and DLPack.
struct DeviceArray {
    std::shared_ptr<fastsep::DeviceBuffer> buffer;
    std::vector<int64_t> shape;
    int device = 0;

    int64_t size() const {
        int64_t n = 1;
        for (auto s : shape) n *= s;
        return n;
    }
    std::uintptr_t ptr() const { return reinterpret_cast<std::uintptr_t>(buffer->data()); }
};

struct DlpackContext {
    std::shared_ptr<fastsep::DeviceBuffer> buffer;  // keeps the memory alive; freeing needs no GIL
    std::vector<int64_t> shape, strides;
    dl::ManagedTensor tensor;
};

void dlpack_deleter(dl::ManagedTensor* t) {
    delete static_cast<DlpackContext*>(t->manager_ctx);
}

void dlpack_capsule_destructor(PyObject* capsule) {
    // an unconsumed capsule still carries the name "dltensor": we own it; a consumer renames it
    if (PyCapsule_IsValid(capsule, "dltensor")) {
        auto* t = static_cast<dl::ManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
        if (t && t->deleter) t->deleter(t);
    }
}

// a batch size from Python: in [1, max_batch]
int checked_batch(const fastsep::Pipeline& p, int64_t batch) { return to_int("batch", batch, 1, p.config().max_batch); }

py::object to_dlpack(const DeviceArray& a) {
    auto* ctx = new DlpackContext{a.buffer, a.shape, std::vector<int64_t>(a.shape.size()), {}};
    int64_t stride = 1;
    for (int i = static_cast<int>(a.shape.size()) - 1; i >= 0; --i) {
        ctx->strides[i] = stride;
        stride *= a.shape[i];
    }
    auto& t = ctx->tensor;
    t.dl_tensor.data = a.buffer->data();
    t.dl_tensor.device = dl::Device{dl::kDLCUDA, a.device};
    t.dl_tensor.ndim = static_cast<int32_t>(a.shape.size());
    t.dl_tensor.dtype = dl::DataType{dl::kDLFloat, 32, 1};
    t.dl_tensor.shape = ctx->shape.data();
    t.dl_tensor.strides = ctx->strides.data();
    t.dl_tensor.byte_offset = 0;
    t.manager_ctx = ctx;
    t.deleter = &dlpack_deleter;
    PyObject* cap = PyCapsule_New(&t, "dltensor", &dlpack_capsule_destructor);
    if (!cap) {
        delete ctx;
        throw py::error_already_set();
    }
    return py::reinterpret_steal<py::object>(cap);
}

cudaStream_t to_stream(std::uintptr_t handle) {
    // __cuda_array_interface__ / DLPack conventions: 1 = legacy default stream, 2 = per-thread default stream
    if (handle == 0 || handle == 1) return cudaStreamLegacy;
    if (handle == 2) return cudaStreamPerThread;
    return reinterpret_cast<cudaStream_t>(handle);
}

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

const char* dtype_name(fastsep::NetDType t) { return t == fastsep::NetDType::Float16 ? "float16" : "float32"; }

template <class Shape>
py::tuple to_tuple(const Shape& s) {
    py::tuple t(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) t[i] = s[i];
    return t;
}

// the call: raw pointers, so that any mix of host/device input and output goes through one function;
// python/fastsep/native.py keeps the arrays alive and validated
fastsep::HostMemory host_memory(int mode) {
    if (mode < 0 || mode > 2) throw InvalidArgument("host memory mode must be 0 (stage), 1 (direct) or 2 (register)");
    return static_cast<fastsep::HostMemory>(mode);
}

const char* host_memory_name(fastsep::HostMemory h) {
    switch (h) {
        case fastsep::HostMemory::Direct: return "direct";
        case fastsep::HostMemory::Register: return "register";
        default: return "stage";
    }
}

void separate(fastsep::Pipeline& p, std::uintptr_t x_ptr, int64_t samples, bool x_on_device, std::uintptr_t out_ptr,
              bool out_on_device, py::object producer_stream, py::object network, int x_host, int out_host) {
    fastsep::PipelineInput in;
    in.data = reinterpret_cast<const float*>(x_ptr);
    in.samples = samples;
    in.on_device = x_on_device;
    in.host = host_memory(x_host);
    if (!producer_stream.is_none()) {
        in.producer = to_stream(producer_stream.cast<std::uintptr_t>());
        in.has_producer = true;
    }
    fastsep::PipelineOutput out;
    out.data = reinterpret_cast<float*>(out_ptr);
    out.on_device = out_on_device;
    out.host = host_memory(out_host);
    fastsep::Pipeline::Network net;
    if (!network.is_none()) {
        py::function fn = network;
        net = [fn](int batch) {
            py::gil_scoped_acquire gil;
            fn(batch);
        };
    }
    {
        py::gil_scoped_release nogil;
        p.separate(in, out, net);
    }
}

// A float32 NumPy array in page-locked memory from the pinned pool: the device DMAs into it, and the block goes
// back to the pool when the array (and every view of it) is gone; no Pipeline needs to be alive.
py::array empty_pinned(const std::vector<int64_t>& shape) {
    const std::size_t bytes = fastsep::buffer_bytes("empty_pinned shape", sizeof(float), shape);
    fastsep::PinnedPool::Handle block;
    {
        py::gil_scoped_release nogil;  // cudaMallocHost may take a while
        block = fastsep::PinnedPool::instance().acquire(bytes);
    }
    void* data = block->ptr;
    auto* owner = new fastsep::PinnedPool::Handle(std::move(block));
    py::capsule base(owner, [](void* h) { delete static_cast<fastsep::PinnedPool::Handle*>(h); });
    std::vector<py::ssize_t> sh(shape.begin(), shape.end());
    return py::array_t<float>(sh, static_cast<float*>(data), base);
}

bool page_locked_range(std::uintptr_t ptr, std::size_t bytes) {
    if (!ptr || (bytes > 1 && bytes - 1 > std::numeric_limits<std::uintptr_t>::max() - ptr)) return false;
    const char* p = reinterpret_cast<const char*>(ptr);
    return fastsep::is_page_locked(p) && (bytes <= 1 || fastsep::is_page_locked(p + bytes - 1));
}

}  // namespace

static void bind_pipeline(py::module_& m) {
    m.def("empty_pinned", &empty_pinned, py::arg("shape"),
          "uninitialised float32 NumPy array in page-locked host memory (pooled; freed to the pool with the array)");
    m.def("is_page_locked", &page_locked_range, py::arg("ptr"), py::arg("nbytes") = 1,
          "whether [ptr, ptr + nbytes) starts and ends in page-locked host memory");
    m.def("pinned_pool_stats", [] {
        auto& pool = fastsep::PinnedPool::instance();
        py::dict d;
        d["cached_bytes"] = pool.cached_bytes();
        d["limit"] = pool.limit();
        d["allocations"] = pool.allocations();
        d["hits"] = pool.hits();
        return d;
    });
    m.def("set_pinned_pool_limit", [](std::size_t bytes) { fastsep::PinnedPool::instance().set_limit(bytes); },
          py::arg("bytes"), "most bytes of page-locked blocks kept for reuse once their arrays are gone");
    m.def("device_count", &device_count, "CUDA devices visible (0 when there is no driver or GPU)");
    m.def("runtime_version", [] {
        int v = 0;
        FASTSEP_CHECK(cudaRuntimeGetVersion(&v));
        return v;
    });
    m.def("driver_version", [] {
        int v = 0;
        FASTSEP_CHECK(cudaDriverGetVersion(&v));
        return v;
    });
    m.def("cufft_version", [] {
        int v = 0;
        FASTSEP_CHECK(cufftGetVersion(&v));
        return v;
    });

    // module_local: _native and the emulated build in _host_dsp bind the same C++ types; both may be imported.
    py::class_<DeviceArray>(m, "DeviceArray", py::module_local(),
                            "float32 device array owned by fastsep (CUDA array interface, DLPack)")
        .def(py::init([](std::vector<int64_t> shape) {
                 DeviceArray a;
                 // checked: size(), nbytes, the DLPack strides and to_numpy's shape cannot overflow afterwards
                 const std::size_t bytes = fastsep::buffer_bytes("DeviceArray shape", 4, shape);
                 a.shape = std::move(shape);
                 FASTSEP_CHECK(cudaGetDevice(&a.device));
                 a.buffer = std::make_shared<fastsep::DeviceBuffer>(bytes);
                 return a;
             }),
             py::arg("shape"))
        .def_property_readonly("shape", [](const DeviceArray& a) { return to_tuple(a.shape); })
        .def_property_readonly("dtype", [](const DeviceArray&) { return py::dtype::of<float>(); })
        .def_property_readonly("ptr", &DeviceArray::ptr)
        .def_property_readonly("device", [](const DeviceArray& a) { return a.device; })
        .def_property_readonly("nbytes", [](const DeviceArray& a) { return a.size() * 4; })
        .def_property_readonly("__cuda_array_interface__",
                               [](const DeviceArray& a) {
                                   py::dict d;
                                   d["shape"] = to_tuple(a.shape);
                                   d["typestr"] = "<f4";
                                   d["data"] = py::make_tuple(a.ptr(), false);
                                   d["strides"] = py::none();
                                   d["version"] = 3;
                                   d["stream"] = py::none();  // complete when handed out: separate() synchronises
                                   return d;
                               })
        .def("__dlpack__", [](const DeviceArray& a, py::object /*stream*/, py::object /*max_version*/,
                              py::object /*dl_device*/, py::object /*copy*/) { return to_dlpack(a); },
             py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
             py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
        .def("__dlpack_device__", [](const DeviceArray& a) { return py::make_tuple(dl::kDLCUDA, a.device); })
        .def("to_numpy",
             [](const DeviceArray& a) {
                 std::vector<py::ssize_t> shape(a.shape.begin(), a.shape.end());
                 py::array_t<float> h(shape);
                 if (a.size()) {
                     fastsep::DeviceGuard guard(a.device);
                     FASTSEP_CHECK(cudaMemcpy(h.mutable_data(), a.buffer->data(), a.size() * 4, cudaMemcpyDeviceToHost));
                 }
                 return h;
             })
        .def("__repr__", [](const DeviceArray& a) {
            std::string s = "DeviceArray(shape=(";
            for (std::size_t i = 0; i < a.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(a.shape[i]);
            return s + "), dtype=float32, device=" + std::to_string(a.device) + ")";
        });

    py::class_<fastsep::Pipeline>(m, "Pipeline", py::module_local())
        .def(py::init([](int64_t n_stems, int64_t F, int64_t T, int64_t frame_length, int64_t frame_step,
                         float separation_exponent, const std::string& mask_extension, const std::string& dtype,
                         int64_t max_batch, int64_t segment_hop) {
                 fastsep::PipelineConfig c;  // the Pipeline checks the ranges; here only that they fit an int
                 c.n_stems = to_int("n_stems", n_stems, 1);
                 c.F = to_int("F", F, 1);
                 c.T = to_int("T", T, 1);
                 c.frame_length = to_int("frame_length", frame_length, 1);
                 c.frame_step = to_int("frame_step", frame_step, 1);
                 c.separation_exponent = separation_exponent;
                 c.mask_extension = parse_extension(mask_extension);
                 if (dtype == "float32")
                     c.dtype = fastsep::NetDType::Float32;
                 else if (dtype == "float16")
                     c.dtype = fastsep::NetDType::Float16;
                 else
                     throw InvalidArgument("dtype must be 'float32' or 'float16', got '" + dtype + "'");
                 c.max_batch = to_int("max_batch", max_batch, 1);
                 c.segment_hop = to_int("segment_hop", segment_hop, 0);
                 return std::make_unique<fastsep::Pipeline>(c);
             }),
             py::arg("n_stems"), py::arg("F"), py::arg("T") = 512, py::arg("frame_length") = 4096,
             py::arg("frame_step") = 1024, py::arg("separation_exponent") = 2.0f, py::arg("mask_extension") = "zeros",
             py::arg("dtype") = "float32", py::arg("max_batch") = 4, py::arg("segment_hop") = 0)
        .def_property_readonly("stream", [](const fastsep::Pipeline& p) {
            return reinterpret_cast<std::uintptr_t>(p.stream());
        })
        .def_property_readonly("device", &fastsep::Pipeline::device)
        .def_property_readonly("n_stems", [](const fastsep::Pipeline& p) { return p.config().n_stems; })
        .def_property_readonly("F", [](const fastsep::Pipeline& p) { return p.config().F; })
        .def_property_readonly("T", [](const fastsep::Pipeline& p) { return p.config().T; })
        .def_property_readonly("frame_length", [](const fastsep::Pipeline& p) { return p.config().frame_length; })
        .def_property_readonly("frame_step", [](const fastsep::Pipeline& p) { return p.config().frame_step; })
        .def_property_readonly("bins", &fastsep::Pipeline::bins)
        .def_property_readonly("max_batch", [](const fastsep::Pipeline& p) { return p.config().max_batch; })
        .def_property_readonly("segment_hop", [](const fastsep::Pipeline& p) { return p.config().segment_hop; })
        .def_property_readonly("dtype", [](const fastsep::Pipeline& p) { return dtype_name(p.config().dtype); })
        .def_property_readonly("separation_exponent",
                               [](const fastsep::Pipeline& p) { return p.config().separation_exponent; })
        .def_property_readonly("mask_extension", [](const fastsep::Pipeline& p) {
            return p.config().mask_extension == dsp::MaskExtension::Average ? "average" : "zeros";
        })
        .def_property_readonly("net_input_ptr", [](const fastsep::Pipeline& p) {
            return reinterpret_cast<std::uintptr_t>(p.net_input());
        })
        .def_property_readonly("net_output_ptr", [](const fastsep::Pipeline& p) {
            return reinterpret_cast<std::uintptr_t>(p.net_output());
        })
        .def("net_input_shape",
             [](const fastsep::Pipeline& p, int64_t b) { return to_tuple(p.net_input_shape(checked_batch(p, b))); },
             py::arg("batch"))
        .def("net_output_shape",
             [](const fastsep::Pipeline& p, int64_t b) { return to_tuple(p.net_output_shape(checked_batch(p, b))); },
             py::arg("batch"))
        .def_property_readonly("device_bytes", &fastsep::Pipeline::device_bytes)
        .def("segments_for", &fastsep::Pipeline::segments_for, py::arg("samples"))
        .def("use_known_network", &fastsep::Pipeline::use_known_network, py::arg("a"), py::arg("b"))
        .def("run_known_network",
             [](fastsep::Pipeline& p, int64_t batch) { p.run_known_network(checked_batch(p, batch)); },
             py::arg("batch"))
        .def("synchronize", [](const fastsep::Pipeline& p) {
            py::gil_scoped_release nogil;
            p.synchronize();
        })
        .def("copy_net_input_to_host",
             [](fastsep::Pipeline& p, int64_t b) -> py::array {
                 const int batch = checked_batch(p, b);  // before the array is allocated
                 auto shape = p.net_input_shape(batch);
                 std::vector<py::ssize_t> s(shape.begin(), shape.end());
                 py::array out(p.config().dtype == fastsep::NetDType::Float16 ? py::dtype("float16")
                                                                              : py::dtype::of<float>(),
                               s);
                 p.copy_net_input_to_host(out.mutable_data(), batch);
                 return out;
             },
             py::arg("batch"))
        .def("copy_net_output_from_host",
             [](fastsep::Pipeline& p, py::array a) {
                 const bool half = p.config().dtype == fastsep::NetDType::Float16;
                 py::array c = py::array::ensure(a, py::array::c_style);
                 if (!c || !c.dtype().is(half ? py::dtype("float16") : py::dtype::of<float>()))
                     throw InvalidArgument(std::string("net output must be a C-contiguous ") +
                                           (half ? "float16" : "float32") + " array");
                 require_shape(c, {-1, p.config().n_stems, 2, p.config().T, p.config().F}, "net_output");
                 p.copy_net_output_from_host(c.data(), checked_batch(p, c.shape(0)));
             },
             py::arg("estimates"))
        .def("separate", &separate, py::arg("x_ptr"), py::arg("samples"), py::arg("x_on_device"), py::arg("out_ptr"),
             py::arg("out_on_device"), py::arg("producer_stream") = py::none(), py::arg("network") = py::none(),
             py::arg("x_host") = 0, py::arg("out_host") = 0,
             "Separate (samples, 2) float32 at x_ptr into (n_stems, samples, 2) float32 at out_ptr. network(batch) "
             "must enqueue the network on `stream`; None uses the known network. x_host / out_host say how host "
             "memory is reached: 0 stage, 1 direct (page-locked), 2 register for the call. Releases the GIL.")
        .def_property_readonly("upload_stream", [](const fastsep::Pipeline& p) {
            return reinterpret_cast<std::uintptr_t>(p.upload_stream());
        })
        .def_property_readonly("download_stream", [](const fastsep::Pipeline& p) {
            return reinterpret_cast<std::uintptr_t>(p.download_stream());
        })
        .def_property_readonly("last_host_path", [](const fastsep::Pipeline& p) {
            const auto& r = p.last_host_path();
            py::dict d;
            d["input"] = host_memory_name(r.input);
            d["output"] = host_memory_name(r.output);
            d["input_registered"] = r.input_registered;
            d["output_registered"] = r.output_registered;
            return d;
        });
}


#if defined(FASTSEP_HOST_DSP_MODULE)
// ================================================================================================ _host_dsp

namespace {

using fastsep::buffer_bytes;
using fastsep::kMaxFrameLength;
using fastsep::kMaxSamples;
using fastsep::require_range;
using fastsep::require_samples;

int frame_length(int64_t N) { return to_int("N", N, 1, kMaxFrameLength); }
int frame_step(int64_t H, int N) { return to_int("H", H, 1, N); }
// a dimension of an array argument, as the int of the DSP argument structs
int dim(const py::array& a, int axis, const char* name) { return to_int(name, a.shape(axis), 0); }

int64_t n_frames(int64_t samples, int64_t N, int64_t H) {
    const int n = frame_length(N);
    return dsp::n_frames(require_samples("samples", samples), n, frame_step(H, n));
}

int64_t n_segments(int64_t samples, int64_t T, int64_t N, int64_t H) {
    const int n = frame_length(N);
    return dsp::n_segments(require_samples("samples", samples), to_int("T", T), n, frame_step(H, n));
}

py::array_t<float> windows(int64_t length, bool synthesis) {
    const int N = frame_length(length);
    py::array_t<float> w(N);
    auto* p = w.mutable_data();
    for (int n = 0; n < N; ++n) p[n] = synthesis ? dsp::synthesis_window(n, N) : dsp::analysis_window(n, N);
    return w;
}

// x holds original samples [x_origin, x_origin + len(x)), as the pipeline's staged chunk does
py::array_t<float> frame_window(f32_array x, int64_t first_frame, int64_t count, int64_t frame_len, int64_t hop,
                                int64_t row_stride, int64_t x_origin) {
    require_shape(x, {-1, 2}, "x");
    const int N = frame_length(frame_len), H = to_int("H", hop);
    if (row_stride < N) throw InvalidArgument("row_stride must be at least N");
    buffer_bytes("frames", 4, {2, count, row_stride});
    // sample positions (first_frame + count) * H and x_origin stay far from int64's ends
    fastsep::checked_product("frame positions", {require_samples("first_frame", first_frame) + count, int64_t(H)},
                             kMaxSamples);
    require_range("x_origin", x_origin, -kMaxSamples, kMaxSamples);
    py::array_t<float> frames({int64_t(2), count, row_stride});
    std::fill(frames.mutable_data(), frames.mutable_data() + frames.size(), 0.0f);
    py::array_t<float> w = windows(N, false);
    dsp::FrameArgs a{x.data(), x_origin, static_cast<int64_t>(x.shape(0)), first_frame, count, N, H, row_stride,
                     w.data(), frames.mutable_data()};
    fastsep::host::frame_window(a);
    return frames;
}

// spectrum (2, count, R): R complex slots per row (R >= bins)
py::array_t<float> magnitude(c64_array spectrum, int64_t segment_frames, int64_t bins_fed) {
    require_shape(spectrum, {2, -1, -1}, "spectrum");
    const int64_t count = spectrum.shape(1);
    const int R = dim(spectrum, 2, "spectrum row length");
    const int T = to_int("T", segment_frames), F = to_int("F", bins_fed, 1, R);
    if (count % T) throw InvalidArgument("frames must be a multiple of T");
    py::array_t<float> out({count / T, int64_t(2), int64_t(T), int64_t(F)});
    dsp::MagnitudeArgs a{reinterpret_cast<const dsp::Complex*>(spectrum.data()), count, R, T, F, T};
    fastsep::host::magnitude(a, out.mutable_data());
    return out;
}

// spectrum (2, count, R) with the first `bins` slots of each row used (bins < 0: all R)
dsp::MaskArgs<float> mask_args(const f32_array& est, const c64_array& spectrum, float p, const std::string& ext,
                               int bins) {
    require_shape(est, {-1, -1, 2, -1, -1}, "estimates");
    require_shape(spectrum, {2, -1, -1}, "spectrum");
    const int64_t b = est.shape(0);
    const int S = to_int("stems", est.shape(1), 1, fastsep::kMaxStems);
    const int T = to_int("T", est.shape(3));
    const int F = to_int("F", est.shape(4));
    const int64_t count = spectrum.shape(1);
    const int R = dim(spectrum, 2, "spectrum row length");
    const int K = bins < 0 ? R : bins;
    if (count != b * T) throw InvalidArgument("spectrum frames must equal segments * T");
    if (K > R || F > K) throw InvalidArgument("need F <= bins <= spectrum row length");
    buffer_bytes("stems", 8, {S, 2, count, R});
    return dsp::MaskArgs<float>{est.data(), reinterpret_cast<const dsp::Complex*>(spectrum.data()), nullptr, nullptr,
                                count, S, K, R, T, F, p, dsp::epsilon_over_n(S), parse_extension(ext)};
}

py::array_t<float> mask_means(f32_array est, c64_array spectrum, float p) {
    auto a = mask_args(est, spectrum, p, "average", -1);
    py::array_t<float> means({int64_t(a.S), int64_t(2), a.count});
    fastsep::host::mask_means(a, means.mutable_data());
    return means;
}

py::array_t<std::complex<float>> apply_masks(f32_array est, c64_array spectrum, float p, const std::string& ext,
                                             int bins) {
    auto a = mask_args(est, spectrum, p, ext, bins);
    py::array_t<float> means({int64_t(a.S), int64_t(2), a.count});
    if (a.extension == dsp::MaskExtension::Average) fastsep::host::mask_means(a, means.mutable_data());
    a.mask_mean = means.data();
    py::array_t<std::complex<float>> stems({int64_t(a.S), int64_t(2), a.count, int64_t(a.R)});
    std::fill(stems.mutable_data(), stems.mutable_data() + stems.size(), std::complex<float>(NAN, NAN));  // unused slots
    a.stems = reinterpret_cast<dsp::Complex*>(stems.mutable_data());
    fastsep::host::apply_masks(a);
    return stems;
}

// frames (S, 2, count, row_stride): unnormalised inverse FFTs; out (S, out_len, 2) holds original samples
// [out_origin, out_origin + out_len); returns the new tail (S, 2, N - H)
py::array_t<float> overlap_add(f32_array frames, int64_t first_frame, int64_t frame_len, int64_t hop,
                               f32_array tail_in, py::array_t<float, py::array::c_style> out, int64_t out_origin,
                               int64_t L) {
    require_shape(frames, {-1, 2, -1, -1}, "frames");
    const int N = frame_length(frame_len), H = frame_step(hop, N);
    const int S = to_int("stems", frames.shape(0), 1, fastsep::kMaxStems);
    // sample positions stay far from int64's ends
    fastsep::checked_product("frame positions", {require_samples("first_frame", first_frame) + frames.shape(2),
                                                 int64_t(H)}, kMaxSamples);
    require_range("out_origin", out_origin, -kMaxSamples, kMaxSamples);
    require_samples("L", L);
    require_shape(tail_in, {S, 2, N - H}, "tail_in");
    require_shape(out, {S, -1, 2}, "out");
    if (frames.shape(3) < N) throw InvalidArgument("frame rows must hold N samples");
    py::array_t<float> tail_out({int64_t(S), int64_t(2), int64_t(N - H)});
    py::array_t<float> w = windows(N, true);
    dsp::OlaArgs a{};
    a.frames = frames.data();
    a.row_stride = frames.shape(3);
    a.count = frames.shape(2);
    a.first_frame = first_frame;
    a.N = N;
    a.H = H;
    a.S = S;
    a.window = w.data();
    a.inv_n = 1.0f / static_cast<float>(N);
    a.tail_in = tail_in.data();
    a.tail_out = tail_out.mutable_data();
    a.out = out.mutable_data();
    a.out_origin = out_origin;
    a.out_len = out.shape(1);
    a.out_stem_stride = 2 * out.shape(1);
    a.L = L;
    fastsep::host::overlap_add(a);
    return tail_out;
}

py::array_t<float> known_network(f32_array x, std::vector<float> a, std::vector<float> b) {
    require_shape(x, {-1, 2, -1, -1}, "net_input");
    if (a.empty() || a.size() > static_cast<std::size_t>(fastsep::kMaxStems) || b.size() != a.size())
        throw InvalidArgument("a and b need one value per stem");
    const int S = static_cast<int>(a.size());
    const int64_t batch = x.shape(0);
    const int T = dim(x, 2, "T"), F = dim(x, 3, "F");
    buffer_bytes("estimates", 4, {batch, S, 2, T, F});
    py::array_t<float> out({batch, int64_t(S), int64_t(2), int64_t(T), int64_t(F)});
    dsp::KnownNetworkArgs<float> k{x.data(), out.mutable_data(), a.data(), b.data(), batch, S, T, F};
    fastsep::host::known_network(k);
    return out;
}

}  // namespace

PYBIND11_MODULE(_host_dsp, m) {
    m.doc() = "Host (CPU) build of fastsep's per-element GPU DSP math, for tests against dsp.py";
    register_errors(m);
    m.attr("EPSILON") = dsp::kEpsilon;
    m.def("n_frames", &n_frames, py::arg("samples"), py::arg("N") = 4096, py::arg("H") = 1024);
    m.def("n_segments", &n_segments, py::arg("samples"), py::arg("T") = 512, py::arg("N") = 4096,
          py::arg("H") = 1024);
    m.def("analysis_window", [](int64_t N) { return windows(N, false); }, py::arg("N"));
    m.def("synthesis_window", [](int64_t N) { return windows(N, true); }, py::arg("N"));
    m.def("frame_window", &frame_window, py::arg("x"), py::arg("first_frame"), py::arg("count"), py::arg("N"),
          py::arg("H"), py::arg("row_stride"), py::arg("x_origin") = 0,
          "(2, count, row_stride) windowed frames [first_frame, first_frame + count) of x (original samples "
          "[x_origin, x_origin + len(x)), zero elsewhere)");
    m.def("magnitude", &magnitude, py::arg("spectrum"), py::arg("T"), py::arg("F"),
          "(2, count, K) complex -> (count/T, 2, T, F) network input");
    m.def("mask_means", &mask_means, py::arg("estimates"), py::arg("spectrum"), py::arg("p"));
    m.def("apply_masks", &apply_masks, py::arg("estimates"), py::arg("spectrum"), py::arg("p"),
          py::arg("mask_extension"), py::arg("bins") = -1,
          "(b, S, 2, T, F) estimates, (2, b*T, R) spectrum -> (S, 2, b*T, R) stems; the first `bins` (default R) "
          "slots of each row are bins, the rest is left NaN");
    m.def("overlap_add", &overlap_add, py::arg("frames"), py::arg("first_frame"), py::arg("N"), py::arg("H"),
          py::arg("tail_in"), py::arg("out"), py::arg("out_origin"), py::arg("L"),
          "gather OLA of one chunk into out (S, out_len, 2); returns the next tail (S, 2, N - H)");
    m.def("known_network", &known_network, py::arg("net_input"), py::arg("a"), py::arg("b"));

    py::module_ em = m.def_submodule(
        "emulated", "fastsep._native's Pipeline on a host emulation of CUDA and cuFFT (tests only: no GPU involved)");
    for (const char* name : {"NativeError", "InvalidArgument", "CudaError"}) em.attr(name) = m.attr(name);
    bind_pipeline(em);
    em.def("live_device_bytes", &fake_cuda_live_device_bytes, "emulated device memory currently allocated");
    em.def("live_pinned_bytes", &fake_cuda_live_pinned_bytes, "emulated cudaMallocHost memory currently allocated");
    em.def("registered_bytes", &fake_cuda_registered_bytes, "host memory currently cudaHostRegister'ed");
    em.def("pageable_async_copies", &fake_cuda_pageable_async_copies,
           "async copies with a pageable host side since the last reset");
    em.def("hazards", &fake_cuda_hazards, "unregistrations with queued work, stuck synchronisations since reset");
    em.def("reset_counters", &fake_cuda_reset_counters);
}

#else

PYBIND11_MODULE(_native, m) {
    m.doc() = "fastsep GPU pipeline: cuFFT + CUDA kernels around a caller-supplied network";
    register_errors(m);
    bind_pipeline(m);
}

#endif
