// Move-only RAII owners of CUDA resources. Destructors are noexcept and ignore errors: in particular
// cudaErrorCudartUnloading when Python tears the runtime down before the last owner dies.
#pragma once

#include <cuda_runtime_api.h>
#include <cufft.h>

#include <cstddef>
#include <map>
#include <vector>
#include <memory>
#include <mutex>
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

// Caller memory page-locked for a scope (cudaHostRegister / cudaHostUnregister), so that async copies DMA straight
// from or into it. try_register never throws: registration fails on read-only pages, on a range that shares a page
// with memory already registered, and where the driver refuses; the owner is then empty and the caller stages.
class HostRegistration {
public:
    HostRegistration() noexcept = default;
    static HostRegistration try_register(const void* ptr, std::size_t bytes) noexcept {
        HostRegistration r;
        if (!ptr || !bytes) return r;
        if (cudaHostRegister(const_cast<void*>(ptr), bytes, cudaHostRegisterDefault) != cudaSuccess) {
            (void)cudaGetLastError();
            return r;
        }
        r.ptr_ = const_cast<void*>(ptr);
        return r;
    }
    HostRegistration(HostRegistration&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)) {}
    HostRegistration& operator=(HostRegistration&& o) noexcept {
        if (this != &o) {
            reset();
            ptr_ = std::exchange(o.ptr_, nullptr);
        }
        return *this;
    }
    HostRegistration(const HostRegistration&) = delete;
    HostRegistration& operator=(const HostRegistration&) = delete;
    ~HostRegistration() { reset(); }
    // the caller makes sure no copy in flight still uses the range
    void reset() noexcept {
        if (ptr_) (void)cudaHostUnregister(ptr_);
        ptr_ = nullptr;
    }
    explicit operator bool() const noexcept { return ptr_ != nullptr; }

private:
    void* ptr_ = nullptr;
};

// Whether ptr is page-locked host memory the device can DMA (cudaMallocHost/cudaHostAlloc or cudaHostRegister).
inline bool is_page_locked(const void* ptr) noexcept {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

// A process-wide cache of page-locked host blocks. cudaMallocHost costs about as much per byte as a memcpy or more
// (the pages are zeroed, pinned and mapped for the device), so blocks whose last user (a NumPy array of stems) is
// gone wait here for the next song of about the same size. Bounded: beyond `limit` cached bytes, blocks are freed.
class PinnedPool {
public:
    struct Block;
    using Handle = std::shared_ptr<Block>;
    struct Block {
        void* ptr = nullptr;
        std::size_t bytes = 0;
    };

    static PinnedPool& instance() {
        static PinnedPool* pool = new PinnedPool();  // never destroyed: no cudaFreeHost while the runtime unloads
        return *pool;
    }

    // A block of at least `bytes`; returns to the pool when the last Handle copy dies.
    Handle acquire(std::size_t bytes) {
        const std::size_t want = round_up(bytes);
        void* ptr = nullptr;
        std::size_t size = 0;
        {
            std::lock_guard<std::mutex> l(mutex_);
            // best fit, wasting at most a quarter: a 3-minute song does not pin a 1-hour block
            auto it = free_.lower_bound(want);
            if (it != free_.end() && it->first <= want + want / 4) {
                ptr = it->second;
                size = it->first;
                cached_ -= size;
                free_.erase(it);
                ++hits_;
            }
        }
        if (!ptr) {
            size = want;
            if (cudaMallocHost(&ptr, size) != cudaSuccess) {
                (void)cudaGetLastError();
                trim(0);  // cached blocks may be what stands in the way
                FASTSEP_CHECK(cudaMallocHost(&ptr, size));
            }
            std::lock_guard<std::mutex> l(mutex_);
            ++allocations_;
        }
        PinnedPool* self = this;
        return Handle(new Block{ptr, size}, [self](Block* b) {
            self->release(b->ptr, b->bytes);
            delete b;
        });
    }

    // Free cached blocks until at most `keep` bytes stay cached.
    void trim(std::size_t keep) noexcept {
        std::vector<std::pair<std::size_t, void*>> drop;
        {
            std::lock_guard<std::mutex> l(mutex_);
            while (cached_ > keep && !free_.empty()) {
                auto it = std::prev(free_.end());  // largest first
                drop.emplace_back(it->first, it->second);
                cached_ -= it->first;
                free_.erase(it);
            }
        }
        for (auto& d : drop) (void)cudaFreeHost(d.second);
    }

    void set_limit(std::size_t bytes) noexcept {
        {
            std::lock_guard<std::mutex> l(mutex_);
            limit_ = bytes;
        }
        trim(bytes);
    }
    std::size_t limit() const noexcept { std::lock_guard<std::mutex> l(mutex_); return limit_; }
    std::size_t cached_bytes() const noexcept { std::lock_guard<std::mutex> l(mutex_); return cached_; }
    std::size_t allocations() const noexcept { std::lock_guard<std::mutex> l(mutex_); return allocations_; }
    std::size_t hits() const noexcept { std::lock_guard<std::mutex> l(mutex_); return hits_; }

private:
    static std::size_t round_up(std::size_t bytes) {
        const std::size_t g = std::size_t(1) << 21;  // 2 MiB: songs a few seconds apart share a size
        return bytes ? (bytes + g - 1) / g * g : g;
    }
    void release(void* ptr, std::size_t bytes) noexcept {
        {
            std::lock_guard<std::mutex> l(mutex_);
            if (bytes <= limit_) {
                free_.emplace(bytes, ptr);
                cached_ += bytes;
                ptr = nullptr;
            }
        }
        if (ptr) (void)cudaFreeHost(ptr);
        trim(limit());
    }

    mutable std::mutex mutex_;
    std::multimap<std::size_t, void*> free_;  // size -> block
    std::size_t cached_ = 0;
    std::size_t limit_ = std::size_t(1) << 30;  // 1 GiB: about 10 minutes of 5 stems (1.76 MB per second)
    std::size_t allocations_ = 0, hits_ = 0;
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
