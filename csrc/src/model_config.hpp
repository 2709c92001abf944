// The model's config as fastsep export-onnx writes it into the ONNX metadata (fastsep_config: ModelConfig.to_json,
// python/fastsep/models/config.py), read by a small strict JSON parser and validated as config.py validates it.
#pragma once

#include <string>
#include <vector>

namespace fastsep {
namespace capi {

struct ModelConfig {
    std::string name;
    std::vector<std::string> instruments;
    int F = 1024;
    int T = 512;
    int frame_length = 4096;
    int frame_step = 1024;
    int sample_rate = 44100;
    int n_channels = 2;
    double separation_exponent = 2.0;
    std::string mask_extension = "zeros";
    std::string model_type = "unet";
    std::string conv_activation = "LeakyReLU";
    std::string deconv_activation = "ReLU";
    std::vector<int> conv_n_filters{16, 32, 64, 128, 256, 512};
    std::string model_dir;

    int n_stems() const noexcept { return static_cast<int>(instruments.size()); }
};

// ModelError (one line) for anything that is not a valid config: bad JSON, too large (> 1 MiB) or too deep (> 32
// levels), unknown or missing fields, wrong types, values out of config.py's bounds.
ModelConfig parse_model_config(const std::string& json);

}  // namespace capi
}  // namespace fastsep
