// CUDA kernels of the DSP: thin grid-stride loops around the element functions of dsp_math.cuh.
#include <cuda_fp16.h>

#include <algorithm>

#include "fastsep/cuda_check.hpp"
#include "fastsep/dsp_math.cuh"
#include "fastsep/kernels.hpp"

namespace fastsep {
namespace kernels {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
    const int64_t b = (n + kThreads - 1) / kThreads;
    return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, 65535 * 4)));
}

#define FASTSEP_GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void frame_kernel(dsp::FrameArgs a) {
    const int64_t n = dsp::frame_elements(a);
    FASTSEP_GRID_STRIDE(i, n) dsp::frame_element(a, i);
}

template <class NetT>
__global__ void magnitude_kernel(dsp::MagnitudeArgs a, NetT* out) {
    const int64_t n = dsp::magnitude_elements(a);
    FASTSEP_GRID_STRIDE(i, n) dsp::store_float(out, i, dsp::magnitude_element(a, i));
}

// one block per (stem, channel, frame) row: mean of the stem's mask over the F bins
template <class NetT>
__global__ void mask_mean_kernel(dsp::MaskArgs<NetT> a, float* mean_out) {
    __shared__ float partial[kThreads];
    const int64_t rows = dsp::mask_mean_rows(a);
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int s, c;
        int64_t fl;
        dsp::mask_mean_row_coords(a, row, s, c, fl);
        float sum = 0.0f;
        for (int f = threadIdx.x; f < a.F; f += blockDim.x) sum += dsp::mask_value(a, s, c, fl, f);
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if (threadIdx.x < w) partial[threadIdx.x] += partial[threadIdx.x + w];
            __syncthreads();
        }
        if (threadIdx.x == 0) mean_out[row] = partial[0] / static_cast<float>(a.F);
        __syncthreads();
    }
}

template <class NetT>
__global__ void mask_kernel(dsp::MaskArgs<NetT> a) {
    const int64_t n = dsp::mask_elements(a);
    FASTSEP_GRID_STRIDE(i, n) dsp::mask_element(a, i);
}

template <class NetT>
__global__ void blend_kernel(dsp::BlendArgs<NetT> a) {
    const int64_t n = dsp::blend_elements(a);
    FASTSEP_GRID_STRIDE(i, n) dsp::blend_element(a, i);
}

template <class NetT>
void blend_t(const BlendLaunch& m, cudaStream_t stream) {
    dsp::BlendArgs<NetT> a{static_cast<const NetT*>(m.estimates), m.fade, m.tail_in, m.blended, m.tail_out,
                           m.first_segment, m.n_segments, m.span, m.count, m.tail_frames, m.b, m.S, m.T, m.F, m.hop};
    FASTSEP_LAUNCH(blend_kernel<NetT>, blocks_for(dsp::blend_elements(a)), kThreads, 0, stream, a);
}

__global__ void ola_kernel(dsp::OlaArgs a) {
    const int64_t n = dsp::ola_elements(a);
    FASTSEP_GRID_STRIDE(i, n) dsp::ola_element(a, i);
}

template <class NetT>
__global__ void known_network_kernel(dsp::KnownNetworkArgs<NetT> k) {
    const int64_t n = dsp::known_network_elements(k);
    FASTSEP_GRID_STRIDE(i, n) dsp::known_network_element(k, i);
}

template <class NetT>
void apply_masks_t(const MaskLaunch& m, cudaStream_t stream) {
    dsp::MaskArgs<NetT> a{static_cast<const NetT*>(m.estimates), m.spectrum, m.mask_mean, m.stems, m.count,
                          m.S, m.K, m.R, m.T, m.F, m.p, m.eps_over_n, m.extension, m.spectrum_frames};
    if (m.extension == dsp::MaskExtension::Average && m.K > m.F) {
        const int64_t rows = dsp::mask_mean_rows(a);
        const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 65535 * 4));
        FASTSEP_LAUNCH(mask_mean_kernel<NetT>, grid, kThreads, 0, stream, a, m.mask_mean);
    }
    FASTSEP_LAUNCH(mask_kernel<NetT>, blocks_for(dsp::mask_elements(a)), kThreads, 0, stream, a);
}

}  // namespace

void frame_window(const dsp::FrameArgs& a, cudaStream_t stream) {
    FASTSEP_LAUNCH(frame_kernel, blocks_for(dsp::frame_elements(a)), kThreads, 0, stream, a);
}

void magnitude(const dsp::MagnitudeArgs& a, void* net_input, NetDType dtype, cudaStream_t stream) {
    const unsigned grid = blocks_for(dsp::magnitude_elements(a));
    if (dtype == NetDType::Float16)
        FASTSEP_LAUNCH(magnitude_kernel<__half>, grid, kThreads, 0, stream, a, static_cast<__half*>(net_input));
    else
        FASTSEP_LAUNCH(magnitude_kernel<float>, grid, kThreads, 0, stream, a, static_cast<float*>(net_input));
}

void apply_masks(const MaskLaunch& m, cudaStream_t stream) {
    if (m.dtype == NetDType::Float16)
        apply_masks_t<__half>(m, stream);
    else
        apply_masks_t<float>(m, stream);
}

void blend(const BlendLaunch& m, cudaStream_t stream) {
    if (m.dtype == NetDType::Float16)
        blend_t<__half>(m, stream);
    else
        blend_t<float>(m, stream);
}

void overlap_add(const dsp::OlaArgs& a, cudaStream_t stream) {
    FASTSEP_LAUNCH(ola_kernel, blocks_for(dsp::ola_elements(a)), kThreads, 0, stream, a);
}

void known_network(const void* input, void* output, const float* a, const float* b, int64_t batch, int S, int T,
                   int F, NetDType dtype, cudaStream_t stream) {
    if (dtype == NetDType::Float16) {
        dsp::KnownNetworkArgs<__half> k{static_cast<const __half*>(input), static_cast<__half*>(output), a, b,
                                        batch, S, T, F};
        FASTSEP_LAUNCH(known_network_kernel<__half>, blocks_for(dsp::known_network_elements(k)), kThreads, 0,
                       stream, k);
    } else {
        dsp::KnownNetworkArgs<float> k{static_cast<const float*>(input), static_cast<float*>(output), a, b, batch,
                                       S, T, F};
        FASTSEP_LAUNCH(known_network_kernel<float>, blocks_for(dsp::known_network_elements(k)), kThreads, 0,
                       stream, k);
    }
}

}  // namespace kernels
}  // namespace fastsep
