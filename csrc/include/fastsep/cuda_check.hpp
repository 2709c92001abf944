// The one error check of the CUDA core: FASTSEP_CHECK(call) checks a CUDA runtime or cuFFT call, and
// FASTSEP_LAUNCH(...) launches a kernel and checks the launch with the same function. A failure clears the
// (non-sticky) error state and throws fastsep::CudaError naming the call, file and line, in every build type.
// Nothing here aborts or exits.
#pragma once

#include <cuda_runtime_api.h>
#include <cufft.h>

#include <string>

#include "fastsep/error.hpp"

namespace fastsep {
namespace detail {

// by value: the enumerators differ between cuFFT versions (11.x has INCOMPLETE_PARAMETER_LIST, 12.x does not)
inline const char* cufft_error_name(cufftResult r) {
    static const char* const names[] = {
        "CUFFT_SUCCESS", "CUFFT_INVALID_PLAN", "CUFFT_ALLOC_FAILED", "CUFFT_INVALID_TYPE", "CUFFT_INVALID_VALUE",
        "CUFFT_INTERNAL_ERROR", "CUFFT_EXEC_FAILED", "CUFFT_SETUP_FAILED", "CUFFT_INVALID_SIZE",
        "CUFFT_UNALIGNED_DATA", "CUFFT_INCOMPLETE_PARAMETER_LIST", "CUFFT_INVALID_DEVICE", "CUFFT_PARSE_ERROR",
        "CUFFT_NO_WORKSPACE", "CUFFT_NOT_IMPLEMENTED", "CUFFT_LICENSE_ERROR", "CUFFT_NOT_SUPPORTED",
        "CUFFT_MISSING_DEPENDENCY", "CUFFT_NVRTC_FAILURE", "CUFFT_NVJITLINK_FAILURE", "CUFFT_NVSHMEM_FAILURE"};
    const int i = static_cast<int>(r);
    return (i >= 0 && i < static_cast<int>(sizeof(names) / sizeof(names[0]))) ? names[i] : "CUFFT_UNKNOWN_ERROR";
}

[[noreturn]] inline void throw_cuda(const std::string& what, const char* call, const char* file, int line, int code) {
    std::string f(file);
    const auto slash = f.find_last_of('/');
    if (slash != std::string::npos) f = f.substr(slash + 1);
    throw CudaError(what + " in " + call + " at " + f + ":" + std::to_string(line), call, f, line, code);
}

inline void check(cudaError_t e, const char* call, const char* file, int line) {
    if (e == cudaSuccess) return;
    cudaGetLastError();  // clear the error state where it is not sticky, so the next call does not see it
    throw_cuda(std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")", call, file, line,
               static_cast<int>(e));
}

inline void check(cufftResult r, const char* call, const char* file, int line) {
    if (r == CUFFT_SUCCESS) return;
    cudaGetLastError();
    throw_cuda(cufft_error_name(r), call, file, line, static_cast<int>(r));
}

}  // namespace detail
}  // namespace fastsep

#define FASTSEP_CHECK(call) ::fastsep::detail::check((call), #call, __FILE__, __LINE__)

// FASTSEP_LAUNCH(kernel, grid, block, shared_bytes, stream, args...): launch and check the launch.
#define FASTSEP_LAUNCH(kernel, grid, block, shmem, stream, ...)                                  \
    do {                                                                                        \
        kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__);                            \
        ::fastsep::detail::check(cudaGetLastError(), #kernel "<<<>>>", __FILE__, __LINE__);     \
    } while (0)
