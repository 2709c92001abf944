// Test-only stand-in for cuFFT: batched 1-D R2C / C2R plans with advanced layout, run on the host
// (csrc/testing/fake_cuda.cpp), unnormalised like cuFFT.
#pragma once

#include <cstddef>

#include "cuda_runtime_api.h"

typedef int cufftHandle;
typedef float cufftReal;
struct cufftComplex {
    float x, y;
};
enum cufftResult {
    CUFFT_SUCCESS = 0,
    CUFFT_INVALID_PLAN = 1,
    CUFFT_ALLOC_FAILED = 2,
    CUFFT_INVALID_TYPE = 3,
    CUFFT_INVALID_VALUE = 4,
    CUFFT_EXEC_FAILED = 6,
    CUFFT_INVALID_SIZE = 8,
};
enum cufftType { CUFFT_R2C = 0x2a, CUFFT_C2R = 0x2c };

cufftResult cufftCreate(cufftHandle* plan);
cufftResult cufftDestroy(cufftHandle plan);
cufftResult cufftGetVersion(int* version);
cufftResult cufftSetAutoAllocation(cufftHandle plan, int autoAllocate);
cufftResult cufftMakePlanMany64(cufftHandle plan, int rank, long long* n, long long* inembed, long long istride,
                                long long idist, long long* onembed, long long ostride, long long odist,
                                cufftType type, long long batch, size_t* workSize);
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream);
cufftResult cufftSetWorkArea(cufftHandle plan, void* workArea);
cufftResult cufftExecR2C(cufftHandle plan, cufftReal* idata, cufftComplex* odata);
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex* idata, cufftReal* odata);
