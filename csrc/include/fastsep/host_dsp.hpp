// Host build of the per-element DSP math: each function is the plain loop around the same dsp_math.cuh element
// function that the matching CUDA kernel loops over. No CUDA needed; tested against dsp.py in CI.
#pragma once

#include <cstdint>

#include "fastsep/dsp_math.cuh"

namespace fastsep {
namespace host {

void frame_window(const dsp::FrameArgs& a);
void magnitude(const dsp::MagnitudeArgs& a, float* net_input);
void mask_means(const dsp::MaskArgs<float>& a, float* mask_mean);
void apply_masks(const dsp::MaskArgs<float>& a);
void overlap_add(const dsp::OlaArgs& a);
void known_network(const dsp::KnownNetworkArgs<float>& k);

}  // namespace host
}  // namespace fastsep
