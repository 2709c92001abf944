#include "fastsep/cpu/openvino_network.hpp"

#include <fstream>
#include <algorithm>
#include <sstream>

#include "fastsep/error.hpp"

namespace fastsep {
namespace cpu {

namespace {
const char* const kInput = "magnitudes";
const char* const kOutput = "estimates";

std::string first_line(const std::exception& e) {
    std::string s = e.what();
    // OpenVINO's messages carry a source location and a traceback on later lines
    std::istringstream lines(s);
    std::string line, last;
    while (std::getline(lines, line)) {
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        if (line.find("Exception from") != std::string::npos || line.find(".cpp:") != std::string::npos) continue;
        return line;
    }
    return s.substr(0, s.find('\n'));
}

template <class Fn>
auto openvino(const char* what, Fn fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw ModelError(std::string(what) + ": " + first_line(e));
    }
}

}  // namespace

std::shared_ptr<ov::Model> OpenVinoNetwork::read_file(const std::string& path) {
    return openvino(("OpenVINO cannot read " + path).c_str(), [&] { return ov::Core().read_model(path); });
}

std::shared_ptr<ov::Model> OpenVinoNetwork::read_with_weights(const std::string& onnx,
                                                              const std::vector<NamedWeight>& weights) {
    return openvino("OpenVINO cannot read the network", [&] {
        auto model = ov::Core().read_model(onnx, ov::Tensor());
        for (const auto& w : weights) {
            std::shared_ptr<ov::op::v0::Parameter> param;
            for (const auto& p : model->get_parameters())
                if (p->get_friendly_name() == w.name) param = p;
            if (!param) throw ModelError("the network has no weight input named " + w.name);
            // a copy: the compiled network may keep referring to a constant's memory (biases, norms)
            auto constant = std::make_shared<ov::op::v0::Constant>(ov::element::f32, ov::Shape(w.shape),
                                                                   static_cast<const void*>(w.data));
            param->output(0).replace(constant->output(0));
            model->remove_parameter(param);
        }
        return model;
    });
}

std::string OpenVinoNetwork::metadata(const ov::Model& model, const std::string& key) {
    try {
        if (!model.has_rt_info("framework", key)) return "";
        return model.get_rt_info<std::string>("framework", key);
    } catch (const std::exception&) {
        return "";
    }
}

std::string OpenVinoNetwork::missing_native_bf16() {
    try {
        ov::Core core;
        const auto caps = core.get_property("CPU", ov::device::capabilities);
        if (std::find(caps.begin(), caps.end(), "BF16") == caps.end())
            return "OpenVINO does not list BF16 among this CPU's capabilities";
    } catch (const std::exception& e) {
        return first_line(e);
    }
    // OpenVINO may list BF16 where it only converts (e.g. AVX2 with AVX-NE-CONVERT)
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("flags", 0) != 0) continue;
        std::istringstream flags(line.substr(line.find(':') + 1));
        std::string flag;
        while (flags >> flag)
            if (flag == "avx512_bf16" || flag == "amx_bf16") return "";
        return "the CPU flags have neither avx512_bf16 nor amx_bf16";
    }
    return "";  // no /proc/cpuinfo: trust OpenVINO's capabilities
}

OpenVinoNetwork::OpenVinoNetwork(const std::shared_ptr<ov::Model>& model, int n_stems, int T, int F, int batch,
                                 const std::string& precision, int threads) {
    FASTSEP_REQUIRE(model != nullptr, "no network");
    FASTSEP_REQUIRE(precision == "fp32" || precision == "bf16",
                    "the OpenVINO network runs fp32 or bf16, not " + precision);
    if (precision == "bf16") {
        const std::string why = missing_native_bf16();
        if (!why.empty()) throw InvalidArgument("bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX): " + why);
    }
    in_shape_ = ov::Shape{size_t(batch), 2, size_t(T), size_t(F)};
    out_shape_ = ov::Shape{size_t(batch), size_t(n_stems), 2, size_t(T), size_t(F)};
    openvino("OpenVINO cannot compile the network", [&] {
        // the exported graph: one input "magnitudes" (batch, 2, T, F), one output "estimates" (batch, S, 2, T, F)
        if (model->inputs().size() != 1 || model->outputs().size() != 1)
            throw ModelError("the network must have one input and one output, it has " +
                             std::to_string(model->inputs().size()) + " and " +
                             std::to_string(model->outputs().size()));
        auto shaped = model->clone();
        shaped->reshape(ov::PartialShape(in_shape_));
        const auto out = shaped->output(0).get_partial_shape();
        if (out.is_dynamic() || out.to_shape() != out_shape_)
            throw ModelError("the network's output is " + out.to_string() + ", not " +
                             ov::PartialShape(out_shape_).to_string() + " (stems, T, F of its config)");
        if (shaped->input(0).get_element_type() != ov::element::f32 ||
            shaped->output(0).get_element_type() != ov::element::f32)
            throw ModelError("the network's input and output must be float32");
        ov::AnyMap config{ov::hint::inference_precision(precision == "bf16" ? ov::element::bf16 : ov::element::f32)};
        if (threads > 0) config.emplace(ov::inference_num_threads(threads));
        ov::Core core;
        compiled_ = core.compile_model(shaped, "CPU", config);
        request_ = compiled_.create_infer_request();
        input_ = compiled_.input();
        output_ = compiled_.output();
        return 0;
    });
}

void OpenVinoNetwork::run(const float* magnitudes, float* estimates, int batch) {
    FASTSEP_REQUIRE(batch == static_cast<int>(in_shape_[0]), "the network was compiled for another batch");
    std::lock_guard<std::mutex> lock(mutex_);
    openvino("OpenVINO failed to run the network", [&] {
        request_.set_tensor(input_, ov::Tensor(ov::element::f32, in_shape_, const_cast<float*>(magnitudes)));
        request_.set_tensor(output_, ov::Tensor(ov::element::f32, out_shape_, estimates));
        request_.infer();
        return 0;
    });
}

}  // namespace cpu
}  // namespace fastsep
