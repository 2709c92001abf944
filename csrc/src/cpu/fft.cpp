#include "fastsep/cpu/fft.hpp"

// Threads are fastsep's own (cpu/thread_pool.hpp); plans are cached so a call costs no twiddle computation.
#define POCKETFFT_NO_MULTITHREADING
#define POCKETFFT_CACHE_SIZE 16
#include FASTSEP_POCKETFFT_HEADER

namespace fastsep {
namespace cpu {

void rfft_rows(int N, int64_t rows, const float* in, int64_t in_stride, cfloat* out, int64_t out_stride) {
    if (rows <= 0) return;
    const pocketfft::shape_t shape{static_cast<std::size_t>(rows), static_cast<std::size_t>(N)};
    const pocketfft::stride_t sin{static_cast<std::ptrdiff_t>(in_stride * sizeof(float)), sizeof(float)};
    const pocketfft::stride_t sout{static_cast<std::ptrdiff_t>(out_stride * sizeof(cfloat)), sizeof(cfloat)};
    pocketfft::r2c(shape, sin, sout, 1, pocketfft::FORWARD, in, out, 1.0f, 1);
}

void irfft_rows(int N, int64_t rows, const cfloat* in, int64_t in_stride, float* out, int64_t out_stride,
                float scale) {
    if (rows <= 0) return;
    const pocketfft::shape_t shape{static_cast<std::size_t>(rows), static_cast<std::size_t>(N)};
    const pocketfft::stride_t sin{static_cast<std::ptrdiff_t>(in_stride * sizeof(cfloat)), sizeof(cfloat)};
    const pocketfft::stride_t sout{static_cast<std::ptrdiff_t>(out_stride * sizeof(float)), sizeof(float)};
    pocketfft::c2r(shape, sin, sout, 1, pocketfft::BACKWARD, in, out, scale, 1);
}

}  // namespace cpu
}  // namespace fastsep
