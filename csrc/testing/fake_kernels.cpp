// Host emulation of kernels.cu: the same grid-stride loops' bodies (the dsp_math.cuh element functions) in plain
// loops, queued on the launch's stream of the emulated runtime (fake_cuda.cpp), with fp16 network I/O emulated by an IEEE binary16 type (round to nearest even, as __float2half_rn).
#include <cstdint>
#include <cstring>

#include "fastsep/dsp_math.cuh"
#include "fastsep/error.hpp"
#include "fastsep/kernels.hpp"
#include "cuda_runtime_api.h"

namespace fake {

struct Half {
    uint16_t bits;
};

inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, f;
    if (exp == 0) {
        if (mant == 0) {
            f = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                --exp;
            }
            f = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        f = sign | 0x7f800000u | (mant << 13);
    } else {
        f = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float out;
    std::memcpy(&out, &f, 4);
    return out;
}

inline uint16_t float_to_half(float v) {  // round to nearest even
    uint32_t f;
    std::memcpy(&f, &v, 4);
    const uint16_t sign = (f >> 16) & 0x8000;
    const uint32_t absf = f & 0x7fffffff;
    if (absf >= 0x7f800000u) return sign | 0x7c00 | (absf > 0x7f800000u ? 0x200 : 0);  // inf / nan
    if (absf >= 0x477ff000u) return sign | 0x7c00;                                     // overflow -> inf
    if (absf < 0x38800000u) {                                                          // subnormal or zero
        if (absf < 0x33000000u) return sign;
        const uint32_t mant = (absf & 0x7fffff) | 0x800000;
        const int shift = 126 - int(absf >> 23);  // 14 + (113 - exp)
        const uint32_t rounded = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        return sign | uint16_t(rounded + (rem > half || (rem == half && (rounded & 1))));
    }
    const uint32_t base = absf - 0x38000000u;  // rebias exponent 127 -> 15
    uint32_t h = base >> 13;
    const uint32_t rem = base & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
    return sign | uint16_t(h);
}

// found by argument-dependent lookup from the dsp_math.cuh templates
inline float load_float(const Half* p, int64_t i) { return half_to_float(p[i].bits); }
inline void store_float(Half* p, int64_t i, float v) { p[i].bits = float_to_half(v); }

}  // namespace fake

namespace fastsep {
namespace kernels {

namespace {
template <class NetT>
void apply_masks_t(const MaskLaunch& m) {
    dsp::MaskArgs<NetT> a{static_cast<const NetT*>(m.estimates), m.spectrum, m.mask_mean, m.stems, m.count,
                          m.S, m.K, m.R, m.T, m.F, m.p, m.eps_over_n, m.extension, m.spectrum_frames};
    if (m.extension == dsp::MaskExtension::Average && m.K > m.F) {
        const int64_t rows = dsp::mask_mean_rows(a);
        for (int64_t row = 0; row < rows; ++row) m.mask_mean[row] = dsp::mask_mean_row(a, row);
    }
    const int64_t n = dsp::mask_elements(a);
    for (int64_t i = 0; i < n; ++i) dsp::mask_element(a, i);
}

template <class NetT>
void blend_t(const BlendLaunch& m) {
    dsp::BlendArgs<NetT> a{static_cast<const NetT*>(m.estimates), m.fade, m.tail_in, m.blended, m.tail_out,
                           m.first_segment, m.n_segments, m.span, m.count, m.tail_frames, m.b, m.S, m.T, m.F, m.hop};
    const int64_t n = dsp::blend_elements(a);
    for (int64_t i = 0; i < n; ++i) dsp::blend_element(a, i);
}

template <class NetT>
void known_network_t(const void* input, void* output, const float* a, const float* b, int64_t batch, int S, int T,
                     int F) {
    dsp::KnownNetworkArgs<NetT> k{static_cast<const NetT*>(input), static_cast<NetT*>(output), a, b, batch, S, T, F};
    const int64_t n = dsp::known_network_elements(k);
    for (int64_t i = 0; i < n; ++i) dsp::known_network_element(k, i);
}
}  // namespace

void frame_window(const dsp::FrameArgs& a, cudaStream_t stream) {
    fake_cuda_enqueue(stream, [a] {
        const int64_t n = dsp::frame_elements(a);
        for (int64_t i = 0; i < n; ++i) dsp::frame_element(a, i);
    });
}

void magnitude(const dsp::MagnitudeArgs& a, void* net_input, NetDType dtype, cudaStream_t stream) {
    fake_cuda_enqueue(stream, [a, net_input, dtype] {
        const int64_t n = dsp::magnitude_elements(a);
        if (dtype == NetDType::Float16) {
            auto* out = static_cast<fake::Half*>(net_input);
            for (int64_t i = 0; i < n; ++i) fake::store_float(out, i, dsp::magnitude_element(a, i));
        } else {
            auto* out = static_cast<float*>(net_input);
            for (int64_t i = 0; i < n; ++i) out[i] = dsp::magnitude_element(a, i);
        }
    });
}

void apply_masks(const MaskLaunch& m, cudaStream_t stream) {
    fake_cuda_enqueue(stream, [m] {
        if (m.dtype == NetDType::Float16)
            apply_masks_t<fake::Half>(m);
        else
            apply_masks_t<float>(m);
    });
}

void blend(const BlendLaunch& m, cudaStream_t stream) {
    fake_cuda_enqueue(stream, [m] {
        if (m.dtype == NetDType::Float16)
            blend_t<fake::Half>(m);
        else
            blend_t<float>(m);
    });
}

void overlap_add(const dsp::OlaArgs& a, cudaStream_t stream) {
    fake_cuda_enqueue(stream, [a] {
        const int64_t n = dsp::ola_elements(a);
        for (int64_t i = 0; i < n; ++i) dsp::ola_element(a, i);
    });
}

void known_network(const void* input, void* output, const float* a, const float* b, int64_t batch, int S, int T,
                   int F, NetDType dtype, cudaStream_t stream) {
    fake_cuda_enqueue(stream, [=] {
        if (dtype == NetDType::Float16)
            known_network_t<fake::Half>(input, output, a, b, batch, S, T, F);
        else
            known_network_t<float>(input, output, a, b, batch, S, T, F);
    });
}

}  // namespace kernels
}  // namespace fastsep
