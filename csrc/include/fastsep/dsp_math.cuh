// Per-element arithmetic and indexing of every DSP kernel (docs/spec.md §2-§3, §6-§7).
//
// Each `*_element(args, i)` computes output element i of one step; a CUDA kernel is a grid-stride loop around
// it (kernels.cu) and the host build is a plain for loop around it (host_dsp.cpp), so the indexing tested on CPU
// in CI is the indexing that runs on the GPU. Compiles as plain C++ (no CUDA) and under nvcc.
//
// Layouts inside one chunk of `count` = b*T frames starting at global frame `first_frame` (python/fastsep/dsp.py
// fixes the outer ones):
//   waveform   (L, 2) float32, sample t at x[2t + c]
//   frames     (2, count, 2*R) float32: windowed frame, first N entries of each row; the in-place R2C turns each
//              row into R complex slots, the first K = N/2 + 1 of them bins. R >= K (the pipeline pads K = 2049
//              to R = 2050 so that every row starts 16-byte aligned)
//   spectrum   (2, count, R) complex
//   net input  (b, 2, T, F)          net output (b, S, 2, T, F)      network dtype (fp32 or fp16)
//   blended    (S, 2, span, F) float32: per-frame estimates of overlapped segments (docs/spec.md §12)
//   stems      (S, 2, count, R) complex, in place C2R -> (S, 2, count, 2*R) unnormalised real frames
//   tail       (S, 2, N - H) float32: partial OLA sums of the samples the next chunk's frames still touch
//   output     (S, L, 2) float32
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define FASTSEP_HD __host__ __device__ __forceinline__
#else
#define FASTSEP_HD inline
#endif

namespace fastsep {
namespace dsp {

// spleeter.utils.tensor EPSILON of the ratio mask (float32 in the graph)
constexpr float kEpsilon = 1e-10f;
constexpr double kWindowCompensation = 2.0 / 3.0;  // periodic Hann at 75 % overlap: sum of w^2 = 1.5

struct alignas(8) Complex {
    float re, im;
};

enum class MaskExtension : int { Zeros = 0, Average = 1 };

// ---------------------------------------------------------------------------------------------------------------
// small helpers

FASTSEP_HD int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

FASTSEP_HD float load_float(const float* p, int64_t i) { return p[i]; }
FASTSEP_HD void store_float(float* p, int64_t i, float v) { p[i] = v; }
#if defined(__CUDACC__)
FASTSEP_HD float load_float(const __half* p, int64_t i) { return __half2float(p[i]); }
FASTSEP_HD void store_float(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
#endif

// STFT frames after prepending N zeros, with pad_end: ceil((L + N) / H)   (docs/spec.md §2.3)
FASTSEP_HD int64_t n_frames(int64_t samples, int N, int H) { return (samples + N + H - 1) / H; }
FASTSEP_HD int64_t n_segments(int64_t samples, int T, int N, int H) { return (n_frames(samples, N, H) + T - 1) / T; }

// Window tables, filled on the host in double as dsp.hann does, then rounded to float32.
inline float analysis_window(int n, int N) {
    return static_cast<float>(0.5 - 0.5 * cos(2.0 * 3.14159265358979323846 * n / N));
}
// dsp.overlap_add: frames *= hann(N) * float32(2/3), a float32 product
inline float synthesis_window(int n, int N) {
    return analysis_window(n, N) * static_cast<float>(kWindowCompensation);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. framing + periodic Hann: frame k = original samples [kH - N, kH), zero outside [0, L)

struct FrameArgs {
    const float* x;      // waveform samples, x[2*(t - x_origin) + c] for t in [x_origin, x_origin + x_len)
    int64_t x_origin;    // original index of x's first sample
    int64_t x_len;       // samples present in x (the rest of [0, L) is never asked for in this chunk)
    int64_t first_frame; // global index of the chunk's first frame
    int64_t count;       // frames in the chunk
    int N, H;
    int64_t row_stride;  // floats between frame rows
    const float* window; // analysis window, N floats
    float* frames;       // (2, count, row_stride)
};

FASTSEP_HD int64_t frame_elements(const FrameArgs& a) { return 2 * a.count * a.N; }

FASTSEP_HD void frame_element(const FrameArgs& a, int64_t i) {
    const int n = static_cast<int>(i % a.N);
    const int64_t row = i / a.N;  // c * count + fl
    const int64_t fl = row % a.count;
    const int c = static_cast<int>(row / a.count);
    const int64_t t = (a.first_frame + fl) * a.H - a.N + n - a.x_origin;
    const float v = (t >= 0 && t < a.x_len) ? a.x[2 * t + c] * a.window[n] : 0.0f;
    a.frames[row * a.row_stride + n] = v;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. magnitude and layout into the network input (b, 2, T, F)

struct MagnitudeArgs {
    const Complex* spectrum; // (2, count, R)
    int64_t count;           // frames in the chunk: b * T, or (b - 1) * hop + T for overlapped segments
    int R, T, F;             // R: complex slots per spectrum row
    int hop;                 // frames between segment starts: T (Spleeter), less for overlapped segments
};

// segments of the chunk: count = (b - 1) * hop + T frames
FASTSEP_HD int64_t magnitude_elements(const MagnitudeArgs& a) {
    return ((a.count - a.T) / a.hop + 1) * 2 * a.T * a.F;
}

FASTSEP_HD float magnitude_element(const MagnitudeArgs& a, int64_t i) {
    const int f = static_cast<int>(i % a.F);
    int64_t r = i / a.F;
    const int t = static_cast<int>(r % a.T);
    r /= a.T;
    const int c = static_cast<int>(r % 2);
    const int64_t seg = r / 2;
    const Complex z = a.spectrum[(c * a.count + seg * a.hop + t) * a.R + f];
    return hypotf(z.re, z.im);  // numpy's abs of complex64
}

// ---------------------------------------------------------------------------------------------------------------
// 3. + 4. ratio masks, extension to K bins, masked spectra (docs/spec.md §6)

FASTSEP_HD float stem_power(float y, float p) { return p == 2.0f ? y * y : powf(y, p); }

// M_i = (Y_i^p + eps/n) / (sum_j Y_j^p + eps)
FASTSEP_HD float ratio_mask(float power_i, float total_power, float eps_over_n) {
    return (power_i + eps_over_n) / (total_power + kEpsilon);
}

// float32(EPSILON / n) computed in double, as dsp.ratio_masks does
inline float epsilon_over_n(int n_stems) { return static_cast<float>(1e-10 / n_stems); }

template <class NetT>
struct MaskArgs {
    const NetT* estimates;    // (b, S, 2, T, F)
    const Complex* spectrum;  // (2, count, R)
    const float* mask_mean;   // (S, 2, count), "average" only
    Complex* stems;           // (S, 2, count, R)
    int64_t count;
    int S, K, R, T, F;        // K bins used of R slots per row
    float p;
    float eps_over_n;
    MaskExtension extension;
    int64_t spectrum_frames = 0;  // frames per channel of the spectrum, if more than count (overlapped segments)
};

template <class NetT>
FASTSEP_HD int64_t spectrum_row(const MaskArgs<NetT>& a, int c, int64_t fl) {
    return c * (a.spectrum_frames > a.count ? a.spectrum_frames : a.count) + fl;
}

// mask of stem s at (channel c, chunk frame fl, bin f < F)
template <class NetT>
FASTSEP_HD float mask_value(const MaskArgs<NetT>& a, int s, int c, int64_t fl, int f) {
    const int64_t seg = fl / a.T;
    const int64_t t = fl % a.T;
    const int64_t plane = static_cast<int64_t>(a.T) * a.F;   // one (segment, stem, channel) image
    const int64_t base = ((seg * a.S) * 2 + c) * plane + t * a.F + f;
    const int64_t stem_step = 2 * plane;
    float total = 0.0f;
    for (int j = 0; j < a.S; ++j) total += stem_power(load_float(a.estimates, base + j * stem_step), a.p);
    return ratio_mask(stem_power(load_float(a.estimates, base + s * stem_step), a.p), total, a.eps_over_n);
}

// "average" extension: mean of M_s over the F bins of one (stem, channel, frame) row, row = (s*2 + c)*count + fl
template <class NetT>
FASTSEP_HD int64_t mask_mean_rows(const MaskArgs<NetT>& a) { return static_cast<int64_t>(a.S) * 2 * a.count; }

template <class NetT>
FASTSEP_HD void mask_mean_row_coords(const MaskArgs<NetT>& a, int64_t row, int& s, int& c, int64_t& fl) {
    fl = row % a.count;
    const int64_t sc = row / a.count;
    c = static_cast<int>(sc % 2);
    s = static_cast<int>(sc / 2);
}

// mean of one row's F masks, summed in order (the host builds; the CUDA kernel reduces the row in parallel)
template <class NetT>
FASTSEP_HD float mask_mean_row(const MaskArgs<NetT>& a, int64_t row) {
    int s, c;
    int64_t fl;
    mask_mean_row_coords(a, row, s, c, fl);
    float sum = 0.0f;
    for (int f = 0; f < a.F; ++f) sum += mask_value(a, s, c, fl, f);
    return sum / static_cast<float>(a.F);
}

// element i over the (2, count, K) bins of the mixture spectrum; writes that bin of every stem
template <class NetT>
FASTSEP_HD int64_t mask_elements(const MaskArgs<NetT>& a) { return 2 * a.count * a.K; }

template <class NetT>
FASTSEP_HD void mask_element(const MaskArgs<NetT>& a, int64_t i) {
    const int f = static_cast<int>(i % a.K);
    const int64_t row = i / a.K;
    const int64_t fl = row % a.count;
    const int c = static_cast<int>(row / a.count);
    const int64_t at = row * a.R + f;  // in each stem
    const Complex z = a.spectrum[spectrum_row(a, c, fl) * a.R + f];
    const int64_t stem_stride = 2 * a.count * a.R;
    if (f < a.F) {
        const int64_t seg = fl / a.T;
        const int64_t t = fl % a.T;
        const int64_t plane = static_cast<int64_t>(a.T) * a.F;
        const int64_t base = ((seg * a.S) * 2 + c) * plane + t * a.F + f;
        const int64_t stem_step = 2 * plane;
        float total = 0.0f;
        for (int j = 0; j < a.S; ++j) total += stem_power(load_float(a.estimates, base + j * stem_step), a.p);
        for (int s = 0; s < a.S; ++s) {
            const float m = ratio_mask(stem_power(load_float(a.estimates, base + s * stem_step), a.p), total,
                                       a.eps_over_n);
            a.stems[s * stem_stride + at] = Complex{m * z.re, m * z.im};
        }
    } else {
        for (int s = 0; s < a.S; ++s) {
            const float m = a.extension == MaskExtension::Average ? a.mask_mean[(s * 2 + c) * a.count + fl] : 0.0f;
            a.stems[s * stem_stride + at] = Complex{m * z.re, m * z.im};
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2b. overlapped segments (docs/spec.md §12, python/fastsep/quality.py): segment s starts at frame s*hop; frame j of
// it is weighted by fade[j] over the sum of the fades of every segment holding that frame, and the chunk's
// per-frame estimates are these weighted sums, in segment order, after the sums carried from the previous chunk.

// raised-cosine ramps of T - hop frames up from each edge, 1 between (quality.fade), in double
inline double fade_weight(int j, int T, int hop) {
    const int ramp = T - hop;
    if (ramp == 0) return 1.0;
    auto rise = [&](int k) {
        const double u = fmin((k + 0.5) / ramp, 1.0);
        const double v = sin(0.5 * 3.14159265358979323846 * u);
        return v * v;
    };
    return fmin(rise(j), rise(T - 1 - j));
}

template <class NetT>
struct BlendArgs {
    const NetT* estimates;  // (b, S, 2, T, F): the chunk's segments
    const double* fade;     // T
    const float* tail_in;   // (S, 2, T, F): sums of frames [0, tail_frames) carried from the previous chunk
    float* blended;         // (S, 2, span, F)
    float* tail_out;        // (S, 2, T, F): frames [count, span), carried to the next chunk
    int64_t first_segment;  // song index of the chunk's first segment
    int64_t n_segments;     // segments of the song
    int64_t span;           // frames the chunk's segments hold: (b - 1) * hop + T
    int64_t count;          // frames final after this chunk: b * hop, or span for the last chunk
    int64_t tail_frames;    // frames carried in
    int b, S, T, F, hop;
};

// weight of frame j of song segment s: fade[j] / (sum of the fades of the segments holding that frame), the float32
// rounding of the double quotient (quality.Schedule.weights)
template <class NetT>
FASTSEP_HD float blend_weight(const BlendArgs<NetT>& a, int64_t s, int j) {
    const int64_t reach = (a.T + a.hop - 1) / a.hop;
    const int64_t lo = s - reach > 0 ? s - reach : 0;
    const int64_t hi = s + reach + 1 < a.n_segments ? s + reach + 1 : a.n_segments;
    double total = 0.0;
    for (int64_t o = lo; o < hi; ++o) {
        const int64_t k = j - (o - s) * a.hop;  // the same frame in segment o
        if (k >= 0 && k < a.T) total += a.fade[k];
    }
    return static_cast<float>(a.fade[j] / total);
}

template <class NetT>
FASTSEP_HD int64_t blend_elements(const BlendArgs<NetT>& a) { return static_cast<int64_t>(a.S) * 2 * a.span * a.F; }

template <class NetT>
FASTSEP_HD void blend_element(const BlendArgs<NetT>& a, int64_t i) {
    const int f = static_cast<int>(i % a.F);
    const int64_t r = i / a.F;
    const int64_t fl = r % a.span;
    const int64_t sc = r / a.span;  // s*2 + c
    const int s = static_cast<int>(sc / 2), c = static_cast<int>(sc % 2);
    const int64_t plane = static_cast<int64_t>(a.T) * a.F;
    float v = fl < a.tail_frames ? a.tail_in[(sc * a.T + fl) * a.F + f] : 0.0f;
    const int64_t k_lo = fl >= a.T ? (fl - a.T) / a.hop + 1 : 0;
    const int64_t k_hi = fl / a.hop < a.b - 1 ? fl / a.hop : a.b - 1;
    for (int64_t k = k_lo; k <= k_hi; ++k) {
        const int j = static_cast<int>(fl - k * a.hop);
        const float y = load_float(a.estimates, ((k * a.S + s) * 2 + c) * plane + static_cast<int64_t>(j) * a.F + f);
        v += y * blend_weight(a, a.first_segment + k, j);
    }
    a.blended[i] = v;
    if (fl >= a.count) a.tail_out[(sc * a.T + fl - a.count) * a.F + f] = v;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. inverse: window, overlap-add as a gather, x2/3, crop (docs/spec.md §7)
//
// Chunk-local sample j covers original sample t = first_frame*H - N + j; frame fl of the chunk covers local
// samples [fl*H, fl*H + N). j in [0, count*H) is complete after this chunk (its first N - H samples add the
// previous chunk's tail); j in [count*H, count*H + N - H) is partial and becomes the next chunk's tail.

struct OlaArgs {
    const float* frames;     // (S, 2, count, row_stride): unnormalised C2R output
    int64_t row_stride;
    int64_t count;
    int64_t first_frame;
    int N, H, S;
    const float* window;     // synthesis window: float32(hann) * float32(2/3)
    float inv_n;             // 1/N: cuFFT's C2R is unnormalised
    const float* tail_in;    // (S, 2, N - H)
    float* tail_out;         // (S, 2, N - H), a different buffer
    float* out;              // sample t of stem s, channel c at out[s*out_stem_stride + 2*(t - out_origin) + c]
    int64_t out_origin;
    int64_t out_len;         // samples per stem held by out
    int64_t out_stem_stride;
    int64_t L;               // song length: only t in [0, L) is written (the crop)
};

FASTSEP_HD int64_t ola_span(const OlaArgs& a) { return a.count * a.H + (a.N - a.H); }
FASTSEP_HD int64_t ola_elements(const OlaArgs& a) { return static_cast<int64_t>(a.S) * 2 * ola_span(a); }

// overlap-added value of local sample j of one (stem, channel) block
FASTSEP_HD float ola_gather(const OlaArgs& a, const float* block, int64_t j) {
    int64_t lo = floor_div(j - a.N, a.H) + 1;
    int64_t hi = j / a.H;
    if (lo < 0) lo = 0;
    if (hi > a.count - 1) hi = a.count - 1;
    float acc = 0.0f;
    for (int64_t fl = lo; fl <= hi; ++fl) {
        const int n = static_cast<int>(j - fl * a.H);
        acc += (block[fl * a.row_stride + n] * a.inv_n) * a.window[n];
    }
    return acc;
}

FASTSEP_HD void ola_element(const OlaArgs& a, int64_t i) {
    const int64_t span = ola_span(a);
    const int64_t j = i % span;
    const int64_t sc = i / span;  // s*2 + c
    const int c = static_cast<int>(sc % 2);
    const int s = static_cast<int>(sc / 2);
    const int tail_len = a.N - a.H;
    float v = ola_gather(a, a.frames + sc * a.count * a.row_stride, j);
    if (j < tail_len) v += a.tail_in[sc * tail_len + j];
    if (j < a.count * a.H) {
        const int64_t t = a.first_frame * a.H - a.N + j;
        const int64_t o = t - a.out_origin;
        if (t >= 0 && t < a.L && o >= 0 && o < a.out_len) a.out[s * a.out_stem_stride + 2 * o + c] = v;
    } else {
        a.tail_out[sc * tail_len + (j - a.count * a.H)] = v;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// built-in "known network" for tests: estimates_s = x * sigmoid(a_s * x + b_s), x = the stem's input magnitude

FASTSEP_HD float known_network_value(float x, float a, float b) { return x / (1.0f + expf(-(a * x + b))); }

template <class NetT>
struct KnownNetworkArgs {
    const NetT* input;  // (b, 2, T, F)
    NetT* output;       // (b, S, 2, T, F)
    const float* a;     // S
    const float* b;     // S
    int64_t batch;
    int S, T, F;
};

template <class NetT>
FASTSEP_HD int64_t known_network_elements(const KnownNetworkArgs<NetT>& k) {
    return k.batch * k.S * 2 * static_cast<int64_t>(k.T) * k.F;
}

template <class NetT>
FASTSEP_HD void known_network_element(const KnownNetworkArgs<NetT>& k, int64_t i) {
    const int64_t plane = static_cast<int64_t>(k.T) * k.F;
    const int64_t p = i % plane;
    int64_t r = i / plane;
    const int c = static_cast<int>(r % 2);
    r /= 2;
    const int s = static_cast<int>(r % k.S);
    const int64_t seg = r / k.S;
    const float x = load_float(k.input, (seg * 2 + c) * plane + p);
    store_float(k.output, i, known_network_value(x, k.a[s], k.b[s]));
}

}  // namespace dsp
}  // namespace fastsep
