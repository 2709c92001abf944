// Sizes and indices from caller-given numbers, checked before anything is allocated or indexed: a product that
// would overflow, or pass a limit no real configuration comes near, is refused with InvalidArgument naming what
// was being sized. With every buffer at most kMaxBufferBytes and every song at most kMaxSamples, the int64 index
// arithmetic of dsp_math.cuh and pipeline.cpp cannot wrap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "fastsep/error.hpp"

namespace fastsep {

// One buffer (device, pinned or host): far beyond any GPU's memory, so never in the way of a real model.
constexpr int64_t kMaxBufferBytes = int64_t(1) << 40;  // 1 TiB
// Samples of one song per channel: about 290 days at 44.1 kHz.
constexpr int64_t kMaxSamples = int64_t(1) << 40;
// STFT frame length (also the FFT size and the window tables): Spleeter uses 4096.
constexpr int kMaxFrameLength = 1 << 20;
// Stems of one model: Spleeter has at most 5.
constexpr int kMaxStems = 1024;

namespace detail {
template <class Dims>
std::string join_dims(const Dims& dims) {
    std::string s;
    for (int64_t d : dims) s += (s.empty() ? "" : " x ") + std::to_string(d);
    return s;
}

template <class Dims>
void require_nonnegative(const char* what, const Dims& dims) {
    for (int64_t d : dims)
        if (d < 0) throw InvalidArgument(std::string(what) + ": negative size in " + join_dims(dims));
}

// Whether the product of the factors (each >= 0) stays within `limit`; the product goes to `product`. A zero
// factor does not hide the others: the nonzero ones must fit on their own, so that strides and shapes derived
// from the same factors cannot overflow either.
template <class Dims>
bool product_within(const Dims& factors, int64_t limit, int64_t& product) {
    int64_t nonzero = 1;
    product = 1;
    for (int64_t f : factors) {
        const int64_t g = f ? f : 1;
        if (nonzero > limit / g) return false;  // nonzero * g > limit, without computing it
        nonzero *= g;
        product *= f;
    }
    return true;
}
}  // namespace detail

// The product of `factors`, or InvalidArgument naming `what` where a factor is negative or the product would pass
// `limit` (default: int64's range).
template <class Dims = std::initializer_list<int64_t>>
int64_t checked_product(const char* what, const Dims& factors, int64_t limit = std::numeric_limits<int64_t>::max()) {
    detail::require_nonnegative(what, factors);
    int64_t product = 0;
    if (!detail::product_within(factors, limit, product))
        throw InvalidArgument(std::string(what) + ": " + detail::join_dims(factors) + " exceeds the limit of " +
                              std::to_string(limit));
    return product;
}

// Bytes of a buffer of `element_bytes` times the product of `dims`, or InvalidArgument naming `what` where a
// dimension is negative or the buffer would pass kMaxBufferBytes.
template <class Dims = std::initializer_list<int64_t>>
std::size_t buffer_bytes(const char* what, int64_t element_bytes, const Dims& dims) {
    detail::require_nonnegative(what, dims);
    int64_t elements = 0;
    if (!detail::product_within(dims, kMaxBufferBytes / element_bytes, elements))
        throw InvalidArgument(std::string(what) + ": " + detail::join_dims(dims) + " elements of " +
                              std::to_string(element_bytes) + " bytes exceed the limit of 1 TiB per buffer");
    return static_cast<std::size_t>(elements * element_bytes);
}

// `value` in [lo, hi], else InvalidArgument("<name> must be in [lo, hi], got value").
inline int64_t require_range(const char* name, int64_t value, int64_t lo, int64_t hi) {
    if (value < lo || value > hi)
        throw InvalidArgument(std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                              "], got " + std::to_string(value));
    return value;
}

// A count of samples: in [0, kMaxSamples].
inline int64_t require_samples(const char* name, int64_t samples) {
    return require_range(name, samples, 0, kMaxSamples);
}

}  // namespace fastsep
