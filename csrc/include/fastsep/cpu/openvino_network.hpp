// Step 2 on the CPU through OpenVINO's C++ runtime (docs/architecture.md §4.7): the network fastsep exports to
// ONNX from its one description of the U-Net (python/fastsep/models/unet_spec.py), compiled for static shapes
// (batch, 2, T, F); the pipeline's buffers are the request's input and output tensors, so nothing is copied.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <openvino/op/constant.hpp>
#include <openvino/op/parameter.hpp>
#include <openvino/openvino.hpp>

#include "fastsep/cpu/pipeline.hpp"

namespace fastsep {
namespace cpu {

struct NamedWeight {
    std::string name;
    std::vector<size_t> shape;
    const float* data;  // copied by read_with_weights
};

class OpenVinoNetwork : public Network {
public:
    // precision "fp32" (exact) or "bf16"; threads 0: OpenVINO's default (every core). ModelError if the model's
    // inputs and outputs do not fit (n_stems, T, F) or OpenVINO cannot compile it.
    OpenVinoNetwork(const std::shared_ptr<ov::Model>& model, int n_stems, int T, int F, int batch,
                    const std::string& precision, int threads);

    // an ONNX file exported by fastsep
    static std::shared_ptr<ov::Model> read_file(const std::string& path);
    // a serialized ONNX graph whose graph inputs named in `weights` are the weights: they become constants (copies)
    static std::shared_ptr<ov::Model> read_with_weights(const std::string& onnx, const std::vector<NamedWeight>& weights);
    // a metadata entry of the ONNX file (fastsep_config, fastsep_precision), "" if absent
    static std::string metadata(const ov::Model& model, const std::string& key);
    // why this CPU cannot run bf16 natively, or "" when it can
    static std::string missing_native_bf16();

    void run(const float* magnitudes, float* estimates, int batch) override;

private:
    ov::CompiledModel compiled_;
    ov::InferRequest request_;
    ov::Output<const ov::Node> input_, output_;
    ov::Shape in_shape_, out_shape_;
    std::mutex mutex_;  // an infer request runs one call at a time
};

}  // namespace cpu
}  // namespace fastsep
