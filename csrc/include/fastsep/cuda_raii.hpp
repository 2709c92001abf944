// Move-only RAII owners of CUDA resources. Destructors are noexcept and ignore errors: in particular
// cudaErrorCudartUnloading when Python tears the runtime down before the last owner dies.
#pragma once

#include <cuda_runtime_api.h>
#include <cufft.h>

#include <cstddef>
#include <utility>

#include "fastsep/cuda_check.hpp"

namespace fastsep {

namespace detail {
template <class Handle, class Deleter>
class Unique {
public:
    Unique() noexcept = default;
    explicit Unique(Handle h) noexcept : h_(h), owned_(true) {}
    Unique(Unique&& o) noexcept : h_(o.h_), owned_(o.owned_) { o.owned_ = false; o.h_ = Handle{}; }
    Unique& operator=(Unique&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = o.h_;
            owned_ = o.owned_;
            o.owned_ = false;
            o.h_ = Handle{};
        }
        return *this;
    }
    Unique(const Unique&) = delete;
    Unique& operator=(const Unique&) = delete;
    ~Unique() { reset(); }
    void reset() noexcept {
        if (owned_) Deleter{}(h_);  // errors (cudaErrorCudartUnloading included) are deliberately ignored
        owned_ = false;
        h_ = Handle{};
    }
    Handle get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return owned_; }

private:
    Handle h_{};
    bool owned_ = false;
};

struct StreamDeleter { void operator()(cudaStream_t s) const noexcept { (void)cudaStreamDestroy(s); } };
struct EventDeleter { void operator()(cudaEvent_t e) const noexcept { (void)cudaEventDestroy(e); } };
struct PlanDeleter { void operator()(cufftHandle p) const noexcept { (void)cufftDestroy(p); } };
}  // namespace detail

// Device memory of a fixed size (cudaMalloc).
class DeviceBuffer {
public:
    DeviceBuffer() noexcept = default;
    explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
        if (bytes) FASTSEP_CHECK(cudaMalloc(&ptr_, bytes));
    }
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            release();
            ptr_ = std::exchange(o.ptr_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { release(); }

    void* data() const noexcept { return ptr_; }
    template <class T> T* as() const noexcept { return static_cast<T*>(ptr_); }
    std::size_t bytes() const noexcept { return bytes_; }

private:
    void release() noexcept {
        if (ptr_) (void)cudaFree(ptr_);
        ptr_ = nullptr;
        bytes_ = 0;
    }
    void* ptr_ = nullptr;
    std::size_t bytes_ = 0;
};

// Page-locked host memory (cudaMallocHost), the staging area of async copies.
class PinnedBuffer {
public:
    PinnedBuffer() noexcept = default;
    explicit PinnedBuffer(std::size_t bytes) : bytes_(bytes) {
        if (bytes) FASTSEP_CHECK(cudaMallocHost(&ptr_, bytes));
    }
    PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
        if (this != &o) {
            release();
            ptr_ = std::exchange(o.ptr_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
        }
        return *this;
    }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    ~PinnedBuffer() { release(); }

    void* data() const noexcept { return ptr_; }
    template <class T> T* as() const noexcept { return static_cast<T*>(ptr_); }
    std::size_t bytes() const noexcept { return bytes_; }

private:
    void release() noexcept {
        if (ptr_) (void)cudaFreeHost(ptr_);
        ptr_ = nullptr;
        bytes_ = 0;
    }
    void* ptr_ = nullptr;
    std::size_t bytes_ = 0;
};

// An owned, non-blocking stream.
class Stream {
public:
    Stream() {
        cudaStream_t s = nullptr;
        FASTSEP_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        h_ = detail::Unique<cudaStream_t, detail::StreamDeleter>(s);
    }
    cudaStream_t get() const noexcept { return h_.get(); }
    void synchronize() const { FASTSEP_CHECK(cudaStreamSynchronize(h_.get())); }

private:
    detail::Unique<cudaStream_t, detail::StreamDeleter> h_;
};

// An owned event without timing (cheap) unless asked for.
class Event {
public:
    explicit Event(bool timing = false) {
        cudaEvent_t e = nullptr;
        FASTSEP_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
        h_ = detail::Unique<cudaEvent_t, detail::EventDeleter>(e);
    }
    cudaEvent_t get() const noexcept { return h_.get(); }
    void record(cudaStream_t s) const { FASTSEP_CHECK(cudaEventRecord(h_.get(), s)); }
    void synchronize() const { FASTSEP_CHECK(cudaEventSynchronize(h_.get())); }

private:
    detail::Unique<cudaEvent_t, detail::EventDeleter> h_;
};

// An owned cuFFT plan handle (cufftCreate); the plan itself is made by the owner with cufftMakePlanMany64.
class FftPlan {
public:
    FftPlan() {
        cufftHandle p = 0;
        FASTSEP_CHECK(cufftCreate(&p));
        h_ = detail::Unique<cufftHandle, detail::PlanDeleter>(p);
    }
    cufftHandle get() const noexcept { return h_.get(); }

private:
    detail::Unique<cufftHandle, detail::PlanDeleter> h_;
};

// Makes `device` current for a scope and restores the previous one.
class DeviceGuard {
public:
    explicit DeviceGuard(int device) {
        FASTSEP_CHECK(cudaGetDevice(&previous_));
        if (previous_ != device) FASTSEP_CHECK(cudaSetDevice(device));
    }
    ~DeviceGuard() { (void)cudaSetDevice(previous_); }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = 0;
};

}  // namespace fastsep
