// Launchers of the DSP kernels (kernels.cu). Each kernel is a grid-stride loop around one dsp_math.cuh element
// function; every launch is checked. Plain C++ header: no CUDA compiler needed to include it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "fastsep/dsp_math.cuh"

namespace fastsep {

enum class NetDType : int { Float32 = 0, Float16 = 1 };

inline std::size_t net_dtype_bytes(NetDType t) { return t == NetDType::Float16 ? 2 : 4; }

struct MaskLaunch {
    const void* estimates;  // (b, S, 2, T, F) in dtype
    const dsp::Complex* spectrum;
    float* mask_mean;       // (S, 2, count), used for the "average" extension
    dsp::Complex* stems;
    int64_t count;
    int S, K, R, T, F;
    float p;
    float eps_over_n;
    dsp::MaskExtension extension;
    NetDType dtype;
    int64_t spectrum_frames;  // frames per channel of the spectrum (span with overlapped segments, else count)
};

struct BlendLaunch {
    const void* estimates;  // (b, S, 2, T, F) in dtype
    const double* fade;
    const float* tail_in;
    float* blended;
    float* tail_out;
    int64_t first_segment, n_segments, span, count, tail_frames;
    int b, S, T, F, hop;
    NetDType dtype;
};

namespace kernels {

void frame_window(const dsp::FrameArgs& a, cudaStream_t stream);
void magnitude(const dsp::MagnitudeArgs& a, void* net_input, NetDType dtype, cudaStream_t stream);
// "average" extension: mask means, then the masked spectra of every stem
void apply_masks(const MaskLaunch& m, cudaStream_t stream);
// overlapped segments: the chunk's per-frame estimates (dsp_math.cuh blend_element)
void blend(const BlendLaunch& m, cudaStream_t stream);
void overlap_add(const dsp::OlaArgs& a, cudaStream_t stream);
void known_network(const void* input, void* output, const float* a, const float* b, int64_t batch, int S, int T,
                   int F, NetDType dtype, cudaStream_t stream);

}  // namespace kernels
}  // namespace fastsep
