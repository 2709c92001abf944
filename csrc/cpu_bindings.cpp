// pybind11 bindings of the CPU pipeline: fastsep._cpu (docs/architecture.md §4.7). With bindings.cpp, the only
// files that include pybind11. python/fastsep/cpu_pipeline.py wraps this module and turns its exceptions into
// fastsep.FastsepError subclasses.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fastsep/cpu/fft.hpp"
#include "fastsep/cpu/pipeline.hpp"
#include "fastsep/cpu/resampler.hpp"
#include "fastsep/error.hpp"
#include "fastsep/sizes.hpp"
#if defined(FASTSEP_HAVE_OPENVINO)
#include "fastsep/cpu/openvino_network.hpp"
#endif

namespace py = pybind11;
namespace cpu = fastsep::cpu;

namespace {

using f32_array = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A NumPy view of memory the pipeline owns: valid during the callback only.
py::array_t<float> view(float* data, std::vector<py::ssize_t> shape) {
    return py::array_t<float>(shape, data, py::capsule(data, [](void*) {}));
}

// Step 2 by a Python callable (onnxruntime, torch, ...): fn(magnitudes, estimates) fills estimates in place.
class CallbackNetwork : public cpu::Network {
public:
    CallbackNetwork(py::function fn, int n_stems, int T, int F) : fn_(std::move(fn)), S_(n_stems), T_(T), F_(F) {}
    ~CallbackNetwork() override {
        py::gil_scoped_acquire gil;
        fn_ = py::function();
    }
    void run(const float* magnitudes, float* estimates, int batch) override {
        py::gil_scoped_acquire gil;
        fn_(view(const_cast<float*>(magnitudes), {batch, 2, T_, F_}), view(estimates, {batch, S_, 2, T_, F_}));
    }

private:
    py::function fn_;
    int S_, T_, F_;
};

fastsep::dsp::MaskExtension parse_extension(const std::string& s) {
    if (s == "zeros") return fastsep::dsp::MaskExtension::Zeros;
    if (s == "average") return fastsep::dsp::MaskExtension::Average;
    throw fastsep::InvalidArgument("mask_extension must be 'zeros' or 'average', got '" + s + "'");
}

f32_array stereo(const py::array& x) {
    f32_array a = f32_array::ensure(x);
    if (!a || a.ndim() != 2 || a.shape(1) != 2) throw fastsep::InvalidArgument("audio must be (samples, 2) float32");
    return a;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "fastsep's CPU pipeline: STFT, network, masks, inverse STFT in C++ (docs/architecture.md §4.7)";
    auto& native_error = py::register_local_exception<fastsep::Error>(m, "NativeError", PyExc_RuntimeError);
    py::register_local_exception<fastsep::InvalidArgument>(m, "InvalidArgument", PyExc_ValueError);
    py::register_local_exception<fastsep::InputError>(m, "InputError", native_error.ptr());
    py::register_local_exception<fastsep::StateError>(m, "StateError", native_error.ptr());
    py::register_local_exception<fastsep::ModelError>(m, "ModelError", native_error.ptr());

    // the FFTs alone (tests against numpy.fft, benchmarks/fft_choice.py)
    m.def("rfft_rows", [](const py::array& x) {
        f32_array a = f32_array::ensure(x);
        if (!a || a.ndim() != 2) throw fastsep::InvalidArgument("rfft_rows takes (rows, N) float32");
        const int64_t rows = a.shape(0), N = a.shape(1);
        fastsep::require_range("N", N, 2, fastsep::kMaxFrameLength);
        py::array_t<std::complex<float>> out({rows, N / 2 + 1});
        py::gil_scoped_release nogil;
        cpu::rfft_rows(static_cast<int>(N), rows, a.data(), N, out.mutable_data(), N / 2 + 1);
        return out;
    }, py::arg("x"));
    m.def("irfft_rows", [](const py::array& x, int64_t N) {
        using c64_array = py::array_t<std::complex<float>, py::array::c_style | py::array::forcecast>;
        c64_array a = c64_array::ensure(x);
        fastsep::require_range("N", N, 2, fastsep::kMaxFrameLength);
        if (!a || a.ndim() != 2 || a.shape(1) != N / 2 + 1)
            throw fastsep::InvalidArgument("irfft_rows takes (rows, N/2 + 1) complex64");
        const int64_t rows = a.shape(0);
        py::array_t<float> out({rows, N});
        py::gil_scoped_release nogil;
        cpu::irfft_rows(static_cast<int>(N), rows, a.data(), N / 2 + 1, out.mutable_data(), N, 1.0f / N);
        return out;
    }, py::arg("x"), py::arg("N"));

    py::class_<cpu::Network, std::shared_ptr<cpu::Network>>(m, "Network", py::module_local());
    py::class_<CallbackNetwork, cpu::Network, std::shared_ptr<CallbackNetwork>>(m, "CallbackNetwork",
                                                                                  py::module_local())
        .def(py::init<py::function, int, int, int>(), py::arg("fn"), py::arg("n_stems"), py::arg("T"), py::arg("F"));

#if defined(FASTSEP_HAVE_OPENVINO)
    m.attr("openvino") = true;
    py::class_<cpu::OpenVinoNetwork, cpu::Network, std::shared_ptr<cpu::OpenVinoNetwork>>(m, "OpenVinoNetwork",
                                                                                          py::module_local())
        .def_static(
            "from_file",
            [](const std::string& path, int n_stems, int T, int F, int batch, const std::string& precision,
               int threads) {
                py::gil_scoped_release nogil;
                return std::make_shared<cpu::OpenVinoNetwork>(cpu::OpenVinoNetwork::read_file(path), n_stems, T, F,
                                                              batch, precision, threads);
            },
            py::arg("path"), py::arg("n_stems"), py::arg("T"), py::arg("F"), py::arg("batch") = 1,
            py::arg("precision") = "fp32", py::arg("threads") = 0)
        .def_static(
            "from_graph",
            [](py::bytes graph, py::dict weights, int n_stems, int T, int F, int batch, const std::string& precision,
               int threads) {
                std::vector<cpu::NamedWeight> named;
                std::vector<f32_array> keep;  // alive until compiled
                for (auto item : weights) {
                    keep.push_back(f32_array::ensure(item.second));
                    if (!keep.back()) throw fastsep::InvalidArgument("weights must be float32 arrays");
                    const auto& a = keep.back();
                    named.push_back({py::str(item.first), std::vector<size_t>(a.shape(), a.shape() + a.ndim()),
                                     a.data()});
                }
                std::string onnx = graph;
                py::gil_scoped_release nogil;
                return std::make_shared<cpu::OpenVinoNetwork>(cpu::OpenVinoNetwork::read_with_weights(onnx, named),
                                                              n_stems, T, F, batch, precision, threads);
            },
            py::arg("graph"), py::arg("weights"), py::arg("n_stems"), py::arg("T"), py::arg("F"),
            py::arg("batch") = 1, py::arg("precision") = "fp32", py::arg("threads") = 0)
        .def(
            "run",
            [](cpu::OpenVinoNetwork& net, const py::array& magnitudes, int n_stems) {
                f32_array x = f32_array::ensure(magnitudes);
                if (!x || x.ndim() != 4) throw fastsep::InvalidArgument("magnitudes must be (batch, 2, T, F)");
                py::array_t<float> out({x.shape(0), py::ssize_t(n_stems), x.shape(1), x.shape(2), x.shape(3)});
                {
                    py::gil_scoped_release nogil;
                    net.run(x.data(), out.mutable_data(), static_cast<int>(x.shape(0)));
                }
                return out;
            },
            py::arg("magnitudes"), py::arg("n_stems"), "The network alone on NumPy arrays (benchmarks, tests)");
    m.def("missing_native_bf16", [] { return cpu::OpenVinoNetwork::missing_native_bf16(); });
#else
    m.attr("openvino") = false;
#endif

    py::class_<cpu::Pipeline>(m, "Pipeline", py::module_local())
        .def(py::init([](std::shared_ptr<cpu::Network> network, int n_stems, int F, int T, int frame_length,
                         int frame_step, float separation_exponent, const std::string& mask_extension,
                         int segment_hop, int batch, int threads, bool overlap_stages) {
                 cpu::Config c;
                 c.n_stems = n_stems;
                 c.F = F;
                 c.T = T;
                 c.frame_length = frame_length;
                 c.frame_step = frame_step;
                 c.separation_exponent = separation_exponent;
                 c.mask_extension = parse_extension(mask_extension);
                 c.segment_hop = segment_hop;
                 c.batch = batch;
                 c.threads = threads;
                 c.overlap_stages = overlap_stages;
                 return std::make_unique<cpu::Pipeline>(c, std::move(network));
             }),
             py::arg("network"), py::arg("n_stems"), py::arg("F"), py::arg("T") = 512, py::arg("frame_length") = 4096,
             py::arg("frame_step") = 1024, py::arg("separation_exponent") = 2.0f, py::arg("mask_extension") = "zeros",
             py::arg("segment_hop") = 0, py::arg("batch") = 1, py::arg("threads") = 0,
             py::arg("overlap_stages") = true)
        .def_property_readonly("n_stems", [](const cpu::Pipeline& p) { return p.config().n_stems; })
        .def_property_readonly("latency", &cpu::Pipeline::latency)
        .def_property_readonly("available", &cpu::Pipeline::available)
        .def_property_readonly("received", &cpu::Pipeline::received)
        .def_property_readonly("finished", &cpu::Pipeline::finished)
        .def_property_readonly("segments_done", &cpu::Pipeline::segments_done)
        .def("segments_for", [](const cpu::Pipeline& p, int64_t samples) { return p.schedule().segments_for(samples); })
        .def("reset", [](cpu::Pipeline& p) {
            py::gil_scoped_release nogil;
            p.reset();
        })
        .def("push", [](cpu::Pipeline& p, const py::array& x) {
            f32_array a = stereo(x);
            py::gil_scoped_release nogil;
            p.push(a.data(), a.shape(0));
        }, py::arg("x"))
        .def("finish", [](cpu::Pipeline& p) {
            py::gil_scoped_release nogil;
            p.finish();
        })
        .def("pull", [](cpu::Pipeline& p, int64_t n) {
            const int S = p.config().n_stems;
            if (n < 0) n = p.available();
            py::array_t<float> out({py::ssize_t(S), py::ssize_t(n), py::ssize_t(2)});
            std::vector<float*> stems(S);
            for (int s = 0; s < S; ++s) stems[s] = out.mutable_data() + int64_t(s) * n * 2;
            py::gil_scoped_release nogil;
            p.pull(stems.data(), n);
            return out;
        }, py::arg("n") = -1, "(stems, n, 2): the next n samples of every stem (all that are available by default)")
        .def("separate", [](cpu::Pipeline& p, const py::array& x, py::object progress) {
            f32_array a = stereo(x);
            const int64_t L = a.shape(0);
            fastsep::buffer_bytes("stems", 4, {int64_t(p.config().n_stems), L, 2});
            py::array_t<float> out({py::ssize_t(p.config().n_stems), py::ssize_t(L), py::ssize_t(2)});
            if (!progress.is_none()) {
                py::function fn = progress;
                p.set_progress([fn](int64_t done, int64_t total) {
                    py::gil_scoped_acquire gil;
                    fn(done, total);
                });
            }
            struct Clear {  // the callable holds Python objects: drop it with the GIL, also on errors
                cpu::Pipeline& p;
                ~Clear() { p.set_progress(nullptr); }
            } clear{p};
            {
                py::gil_scoped_release nogil;
                p.separate(a.data(), L, out.mutable_data());
            }
            return out;
        }, py::arg("x"), py::arg("progress") = py::none(),
        "A whole song (L, 2) float32 -> (stems, L, 2) float32; progress(done, total) after each chunk's network");

    // streaming sample-rate conversion (docs/architecture.md §4.7)
    auto frames_array = [](std::vector<float>& v, int channels) {
        const py::ssize_t m = static_cast<py::ssize_t>(v.size() / size_t(channels));
        py::array_t<float> out({m, py::ssize_t(channels)});
        if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(float));
        return out;
    };
    py::class_<cpu::Resampler>(m, "Resampler", py::module_local())
        .def(py::init<int, int, int>(), py::arg("in_rate"), py::arg("out_rate"), py::arg("channels"))
        .def_property_readonly("in_rate", &cpu::Resampler::in_rate)
        .def_property_readonly("out_rate", &cpu::Resampler::out_rate)
        .def_property_readonly("channels", &cpu::Resampler::channels)
        .def_property_readonly("lookahead", &cpu::Resampler::lookahead)
        .def("process", [frames_array](cpu::Resampler& r, const py::array& x) {
            f32_array a = f32_array::ensure(x);
            if (!a || a.ndim() != 2 || a.shape(1) != r.channels())
                throw fastsep::InvalidArgument("audio must be (frames, " + std::to_string(r.channels()) +
                                               ") float32");
            std::vector<float> out;
            {
                py::gil_scoped_release nogil;
                r.process(a.data(), a.shape(0), out);
            }
            return frames_array(out, r.channels());
        }, py::arg("x"), "(n, channels) float32 -> the (m, channels) output frames it completes")
        .def("finish", [frames_array](cpu::Resampler& r) {
            std::vector<float> out;
            {
                py::gil_scoped_release nogil;
                r.finish(out);
            }
            return frames_array(out, r.channels());
        }, "the rest: the output holds output_length(input frames) frames in all")
        .def("reset", &cpu::Resampler::reset)
        .def_static("output_length", &cpu::Resampler::output_length, py::arg("n"), py::arg("in_rate"),
                    py::arg("out_rate"));
}
