// Real FFTs of frame rows for the CPU pipeline (docs/architecture.md §4.7): pocketfft, the FFT library SciPy and
// NumPy use, compiled into fastsep (header only, taken at build time from an installed package; nothing of it is
// in this repository). Rows are transformed several at a time with SIMD across rows.
#pragma once

#include <complex>
#include <cstdint>

namespace fastsep {
namespace cpu {

using cfloat = std::complex<float>;

// rows of N floats (row i at in + i*in_stride) -> rows of N/2 + 1 bins (out + i*out_stride)
void rfft_rows(int N, int64_t rows, const float* in, int64_t in_stride, cfloat* out, int64_t out_stride);

// rows of N/2 + 1 bins -> rows of N floats, times `scale` (1/N: the inverse of rfft_rows)
void irfft_rows(int N, int64_t rows, const cfloat* in, int64_t in_stride, float* out, int64_t out_stride,
                float scale);

}  // namespace cpu
}  // namespace fastsep
