#include "fastsep/host_dsp.hpp"

namespace fastsep {
namespace host {

void frame_window(const dsp::FrameArgs& a) {
    const int64_t n = dsp::frame_elements(a);
    for (int64_t i = 0; i < n; ++i) dsp::frame_element(a, i);
}

void magnitude(const dsp::MagnitudeArgs& a, float* net_input) {
    const int64_t n = dsp::magnitude_elements(a);
    for (int64_t i = 0; i < n; ++i) net_input[i] = dsp::magnitude_element(a, i);
}

void mask_means(const dsp::MaskArgs<float>& a, float* mask_mean) {
    const int64_t rows = dsp::mask_mean_rows(a);
    for (int64_t row = 0; row < rows; ++row) mask_mean[row] = dsp::mask_mean_row(a, row);
}

void apply_masks(const dsp::MaskArgs<float>& a) {
    const int64_t n = dsp::mask_elements(a);
    for (int64_t i = 0; i < n; ++i) dsp::mask_element(a, i);
}

void overlap_add(const dsp::OlaArgs& a) {
    const int64_t n = dsp::ola_elements(a);
    for (int64_t i = 0; i < n; ++i) dsp::ola_element(a, i);
}

void known_network(const dsp::KnownNetworkArgs<float>& k) {
    const int64_t n = dsp::known_network_elements(k);
    for (int64_t i = 0; i < n; ++i) dsp::known_network_element(k, i);
}

}  // namespace host
}  // namespace fastsep
