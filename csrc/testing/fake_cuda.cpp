// Host emulation of the CUDA runtime and cuFFT subset the pipeline uses (see fake_cuda/*.h). Arguments are checked
// at the call; the work itself is queued on its stream and run later, when something synchronises, in an
// adversarial order: FASTSEP_FAKE_CUDA_SCHEDULE=first (default) runs the earliest-created stream as far as it can
// before any other, =last the latest-created first, =immediate everything at the call. Only stream order and event
// waits are respected, as on a GPU, so a missing event wait between the pipeline's compute and copy streams reads
// stale or NaN data. It is strict where a GPU would be: device memory starts as NaN bytes, work areas must be set
// and alive, handles must be live, and a failure can be injected with the environment variable
// FASTSEP_FAKE_CUDA_FAIL=<function name> (that function then returns an error). Device and pinned memory are
// finite, as on a GPU: an allocation past kEmulatedMemory fails instead of reaching the host's memory.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_runtime_api.h"
#include "cufft.h"

namespace {

// recursive: queued work runs while the call that synchronises holds the lock
std::recursive_mutex g_mutex;
using Lock = std::lock_guard<std::recursive_mutex>;
std::map<const void*, size_t> g_device;   // live device allocations
std::map<const void*, size_t> g_pinned;
std::map<const void*, size_t> g_registered;
std::set<const void*> g_streams;
std::vector<cudaStream_t> g_stream_order;  // creation order
std::map<const void*, std::shared_ptr<bool>> g_events;  // event -> completion flag of its latest record
cudaError_t g_last = cudaSuccess;
size_t g_pageable_async = 0, g_hazards = 0;

// one queued operation: work, or a wait for an event record, or an event record (sets its flag)
struct Op {
    std::function<void()> fn;
    std::shared_ptr<bool> wait;
    std::shared_ptr<bool> done;
};
std::map<cudaStream_t, std::deque<Op>> g_queues;

enum class Schedule { First, Last, Immediate };
Schedule schedule() {
    const char* s = std::getenv("FASTSEP_FAKE_CUDA_SCHEDULE");
    if (s && std::strcmp(s, "immediate") == 0) return Schedule::Immediate;
    if (s && std::strcmp(s, "last") == 0) return Schedule::Last;
    return Schedule::First;
}

cudaStream_t queue_key(cudaStream_t s) { return s == nullptr ? cudaStreamLegacy : s; }

bool pending() {
    for (auto& kv : g_queues)
        if (!kv.second.empty()) return true;
    return false;
}

void enqueue(cudaStream_t s, Op op) {
    if (schedule() == Schedule::Immediate && !pending()) {
        if (op.fn) op.fn();
        if (op.done) *op.done = true;
        return;
    }
    g_queues[queue_key(s)].push_back(std::move(op));
}

// Run queued work until done() holds: the preferred stream runs as far as it can (up to an unsatisfied wait)
// before the next one gets a turn, and after any progress the preferred one goes again. False: stuck.
template <class Pred>
bool drain_until(Pred done) {
    std::vector<cudaStream_t> order{cudaStreamLegacy, cudaStreamPerThread};
    order.insert(order.end(), g_stream_order.begin(), g_stream_order.end());
    if (schedule() == Schedule::Last) std::reverse(order.begin(), order.end());
    while (!done()) {
        bool ran = false;
        for (cudaStream_t s : order) {
            auto it = g_queues.find(s);
            if (it == g_queues.end()) continue;
            auto& q = it->second;
            while (!q.empty() && !(q.front().wait && !*q.front().wait)) {
                Op op = std::move(q.front());
                q.pop_front();
                if (op.fn) op.fn();
                if (op.done) *op.done = true;
                ran = true;
            }
            if (ran) break;
        }
        if (!ran) {
            if (!done()) ++g_hazards;
            return done();
        }
    }
    return true;
}
void drain_all() {
    drain_until([] { return !pending(); });
}

bool in_ranges(const std::map<const void*, size_t>& m, const void* p, size_t bytes) {
    auto it = m.upper_bound(p);
    if (it == m.begin()) return false;
    --it;
    const char* base = static_cast<const char*>(it->first);
    const char* q = static_cast<const char*>(p);
    return q >= base && q + bytes <= base + it->second;
}

struct Plan {
    bool made = false;
    bool auto_alloc = true;
    void* work = nullptr;
    size_t work_size = 0;
    long long n = 0, idist = 0, odist = 0, batch = 0;
    cufftType type = CUFFT_R2C;
    cudaStream_t stream = nullptr;
};
std::map<int, Plan> g_plans;
int g_next_plan = 1;

// the emulated GPU's memory, and the most page-locked memory it grants (each on its own)
constexpr size_t kEmulatedMemory = size_t(4) << 30;

bool fits(const std::map<const void*, size_t>& live, size_t bytes) {
    size_t used = 0;
    for (auto& kv : live) used += kv.second;
    return bytes <= kEmulatedMemory - used;
}

bool fail(const char* name) {
    const char* f = std::getenv("FASTSEP_FAKE_CUDA_FAIL");
    return f && std::strcmp(f, name) == 0;
}

cudaError_t ret(cudaError_t e) {
    if (e != cudaSuccess) g_last = e;
    return e;
}

bool stream_ok(cudaStream_t s) {  // (caller holds the lock)
    return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread || g_streams.count(s);
}

// inside a live allocation (device or pinned) or plain host memory: only device ranges are checked
bool device_range_ok(const void* p, size_t bytes) {
    auto it = g_device.upper_bound(p);
    if (it == g_device.begin()) return false;
    --it;
    const char* base = static_cast<const char*>(it->first);
    const char* q = static_cast<const char*>(p);
    return q >= base && q + bytes <= base + it->second;
}

void fft(std::vector<std::complex<double>>& a, bool inverse) {
    const size_t n = a.size();
    if (n & (n - 1)) {  // not a power of two: plain DFT
        std::vector<std::complex<double>> out(n);
        const double sign = inverse ? 1.0 : -1.0;
        for (size_t k = 0; k < n; ++k) {
            std::complex<double> acc = 0;
            for (size_t j = 0; j < n; ++j) acc += a[j] * std::polar(1.0, sign * 2 * M_PI * double(j * k % n) / n);
            out[k] = acc;
        }
        a.swap(out);
        return;
    }
    for (size_t i = 1, j = 0; i < n; ++i) {
        size_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) std::swap(a[i], a[j]);
    }
    for (size_t len = 2; len <= n; len <<= 1) {
        const double ang = 2 * M_PI / double(len) * (inverse ? 1 : -1);
        const std::complex<double> wl(std::cos(ang), std::sin(ang));
        for (size_t i = 0; i < n; i += len) {
            std::complex<double> w(1);
            for (size_t j = 0; j < len / 2; ++j) {
                const auto u = a[i + j], v = a[i + j + len / 2] * w;
                a[i + j] = u + v;
                a[i + j + len / 2] = u - v;
                w *= wl;
            }
        }
    }
}

}  // namespace

size_t fake_cuda_live_device_bytes() {
    Lock l(g_mutex);
    size_t total = 0;
    for (auto& kv : g_device) total += kv.second;
    return total;
}
size_t fake_cuda_live_pinned_bytes() {
    Lock l(g_mutex);
    size_t total = 0;
    for (auto& kv : g_pinned) total += kv.second;
    return total;
}
size_t fake_cuda_registered_bytes() {
    Lock l(g_mutex);
    size_t total = 0;
    for (auto& kv : g_registered) total += kv.second;
    return total;
}
size_t fake_cuda_pageable_async_copies() {
    Lock l(g_mutex);
    return g_pageable_async;
}
size_t fake_cuda_hazards() {
    Lock l(g_mutex);
    return g_hazards;
}
void fake_cuda_reset_counters() {
    Lock l(g_mutex);
    g_pageable_async = 0;
    g_hazards = 0;
}
void fake_cuda_enqueue(cudaStream_t s, std::function<void()> fn) {
    Lock l(g_mutex);
    enqueue(s, Op{std::move(fn), nullptr, nullptr});
}

cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : ret(cudaErrorInvalidValue); }
cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = 0;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
    *v = 0;
    return cudaSuccess;
}
cudaError_t cudaGetLastError() {
    const cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorCudartUnloading: return "cudaErrorCudartUnloading";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorHostMemoryAlreadyRegistered: return "cudaErrorHostMemoryAlreadyRegistered";
        case cudaErrorHostMemoryNotRegistered: return "cudaErrorHostMemoryNotRegistered";
    }
    return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
    Lock l(g_mutex);
    if (fail("cudaMalloc") || !fits(g_device, bytes)) return ret(cudaErrorMemoryAllocation);
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return ret(cudaErrorMemoryAllocation);
    std::memset(*p, 0xff, bytes);  // NaN floats: reading what was never written shows up in the results
    g_device[*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
    Lock l(g_mutex);
    if (!p) return cudaSuccess;
    drain_all();  // as on a GPU: cudaFree waits for the device
    if (!g_device.erase(p)) return ret(cudaErrorInvalidValue);
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    Lock l(g_mutex);
    if (fail("cudaMallocHost") || !fits(g_pinned, bytes)) return ret(cudaErrorMemoryAllocation);
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return ret(cudaErrorMemoryAllocation);
    std::memset(*p, 0xff, bytes);
    g_pinned[*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
    Lock l(g_mutex);
    if (!p) return cudaSuccess;
    drain_all();
    if (!g_pinned.erase(p)) return ret(cudaErrorInvalidValue);
    std::free(p);
    return cudaSuccess;
}

// Registration works on whole pages, as the driver's does: two ranges sharing a page conflict.
static const size_t kPage = 4096;
static uintptr_t page_lo(const void* p) { return reinterpret_cast<uintptr_t>(p) / kPage; }
static uintptr_t page_hi(const void* p, size_t bytes) {
    return (reinterpret_cast<uintptr_t>(p) + (bytes ? bytes : 1) - 1) / kPage;
}

cudaError_t cudaHostRegister(void* p, size_t bytes, unsigned) {
    Lock l(g_mutex);
    if (fail("cudaHostRegister") || !p || !bytes) return ret(cudaErrorInvalidValue);
    for (auto* m : {&g_registered, &g_pinned})
        for (auto& kv : *m)
            if (page_lo(kv.first) <= page_hi(p, bytes) && page_lo(p) <= page_hi(kv.first, kv.second))
                return ret(cudaErrorHostMemoryAlreadyRegistered);
    g_registered[p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaHostUnregister(void* p) {
    Lock l(g_mutex);
    if (!g_registered.erase(p)) return ret(cudaErrorHostMemoryNotRegistered);
    if (pending()) ++g_hazards;  // queued copies might still use the range
    return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
    Lock l(g_mutex);
    *a = cudaPointerAttributes{cudaMemoryTypeUnregistered, 0, nullptr, nullptr};
    if (device_range_ok(p, 1)) {
        a->type = cudaMemoryTypeDevice;
        a->devicePointer = const_cast<void*>(p);
    } else if (in_ranges(g_pinned, p, 1) || in_ranges(g_registered, p, 1)) {
        a->type = cudaMemoryTypeHost;
        a->hostPointer = a->devicePointer = const_cast<void*>(p);
    }
    return cudaSuccess;
}

static bool page_locked(const void* p, size_t bytes) {
    return in_ranges(g_pinned, p, bytes) || in_ranges(g_registered, p, bytes);
}

// checks at the call; the bytes move when the stream gets there (now with stream == nullptr and `now`)
static cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s, bool now) {
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !device_range_ok(dst, bytes)) || (src_dev && !device_range_ok(src, bytes)))
        return ret(cudaErrorInvalidValue);
    if (now) {
        std::memmove(dst, src, bytes);
        return cudaSuccess;
    }
    if ((kind == cudaMemcpyHostToDevice && !page_locked(src, bytes)) ||
        (kind == cudaMemcpyDeviceToHost && !page_locked(dst, bytes)))
        ++g_pageable_async;
    enqueue(s, Op{[dst, src, bytes] { std::memmove(dst, src, bytes); }, nullptr, nullptr});
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    Lock l(g_mutex);
    if (fail("cudaMemcpy")) return ret(cudaErrorInvalidValue);
    // the legacy default stream: ordered after its own queue only (the pipeline's streams are non-blocking)
    drain_until([] {
        auto it = g_queues.find(cudaStreamLegacy);
        return it == g_queues.end() || it->second.empty();
    });
    return copy(dst, src, bytes, kind, nullptr, true);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    Lock l(g_mutex);
    if (fail("cudaMemcpyAsync") || !stream_ok(s)) return ret(cudaErrorInvalidValue);
    return copy(dst, src, bytes, kind, s, false);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
    Lock l(g_mutex);
    if (fail("cudaMemcpy2DAsync") || !stream_ok(s) || width > dpitch || width > spitch)
        return ret(cudaErrorInvalidValue);
    for (size_t r = 0; r < height; ++r) {
        const cudaError_t e = copy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                                   width, kind, s, false);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
    Lock l(g_mutex);
    if (!stream_ok(s) || !device_range_ok(p, bytes)) return ret(cudaErrorInvalidValue);
    enqueue(s, Op{[p, value, bytes] { std::memset(p, value, bytes); }, nullptr, nullptr});
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
    Lock l(g_mutex);
    if (fail("cudaStreamCreateWithFlags")) return ret(cudaErrorInvalidValue);
    *s = reinterpret_cast<cudaStream_t>(new char);
    g_streams.insert(*s);
    g_stream_order.push_back(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    Lock l(g_mutex);
    if (!g_streams.count(s)) return ret(cudaErrorInvalidResourceHandle);
    drain_until([s] {  // queued work completes before the stream goes away
        auto it = g_queues.find(s);
        return it == g_queues.end() || it->second.empty();
    });
    g_streams.erase(s);
    g_queues.erase(s);
    g_stream_order.erase(std::find(g_stream_order.begin(), g_stream_order.end(), s));
    delete reinterpret_cast<char*>(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    Lock l(g_mutex);
    if (fail("cudaStreamSynchronize")) return ret(cudaErrorInvalidValue);
    if (!stream_ok(s)) return ret(cudaErrorInvalidResourceHandle);
    const cudaStream_t k = queue_key(s);
    const bool ok = drain_until([k] {
        auto it = g_queues.find(k);
        return it == g_queues.end() || it->second.empty();
    });
    return ok ? cudaSuccess : ret(cudaErrorInvalidValue);
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    Lock l(g_mutex);
    auto it = g_events.find(e);
    if (!stream_ok(s) || it == g_events.end()) return ret(cudaErrorInvalidResourceHandle);
    if (it->second) enqueue(s, Op{nullptr, it->second, nullptr});  // never recorded: nothing to wait for
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
    Lock l(g_mutex);
    *e = reinterpret_cast<cudaEvent_t>(new char);
    g_events[*e] = nullptr;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    Lock l(g_mutex);
    if (!g_events.erase(e)) return ret(cudaErrorInvalidResourceHandle);
    delete reinterpret_cast<char*>(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    Lock l(g_mutex);
    auto it = g_events.find(e);
    if (!stream_ok(s) || it == g_events.end()) return ret(cudaErrorInvalidResourceHandle);
    it->second = std::make_shared<bool>(false);
    enqueue(s, Op{nullptr, nullptr, it->second});
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    Lock l(g_mutex);
    auto it = g_events.find(e);
    if (it == g_events.end()) return ret(cudaErrorInvalidResourceHandle);
    const std::shared_ptr<bool> flag = it->second;
    return drain_until([flag] { return !flag || *flag; }) ? cudaSuccess : ret(cudaErrorInvalidValue);
}

// ------------------------------------------------------------------------------------------------- cuFFT

cufftResult cufftCreate(cufftHandle* plan) {
    Lock l(g_mutex);
    *plan = g_next_plan++;
    g_plans[*plan] = Plan{};
    return CUFFT_SUCCESS;
}
cufftResult cufftDestroy(cufftHandle plan) {
    Lock l(g_mutex);
    return g_plans.erase(plan) ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}
cufftResult cufftGetVersion(int* version) {
    *version = 0;
    return CUFFT_SUCCESS;
}
cufftResult cufftSetAutoAllocation(cufftHandle plan, int autoAllocate) {
    Lock l(g_mutex);
    auto it = g_plans.find(plan);
    if (it == g_plans.end()) return CUFFT_INVALID_PLAN;
    it->second.auto_alloc = autoAllocate != 0;
    return CUFFT_SUCCESS;
}
cufftResult cufftMakePlanMany64(cufftHandle plan, int rank, long long* n, long long* inembed, long long istride,
                                long long idist, long long* onembed, long long ostride, long long odist,
                                cufftType type, long long batch, size_t* workSize) {
    Lock l(g_mutex);
    if (fail("cufftMakePlanMany64")) return CUFFT_INVALID_VALUE;
    auto it = g_plans.find(plan);
    if (it == g_plans.end()) return CUFFT_INVALID_PLAN;
    if (rank != 1 || istride != 1 || ostride != 1 || n[0] < 2 || batch < 1) return CUFFT_INVALID_VALUE;
    const long long bins = n[0] / 2 + 1;
    if (type == CUFFT_R2C && (inembed[0] < n[0] || onembed[0] < bins || idist < n[0] || odist < bins))
        return CUFFT_INVALID_VALUE;
    if (type == CUFFT_C2R && (inembed[0] < bins || onembed[0] < n[0] || idist < bins || odist < n[0]))
        return CUFFT_INVALID_VALUE;
    Plan& p = it->second;
    p.made = true;
    p.n = n[0];
    p.idist = idist;
    p.odist = odist;
    p.type = type;
    p.batch = batch;
    p.work_size = static_cast<size_t>(batch) * 64;  // a work area that grows with the batch, as cuFFT's may
    *workSize = p.work_size;
    return CUFFT_SUCCESS;
}
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t s) {
    Lock l(g_mutex);
    auto it = g_plans.find(plan);
    if (it == g_plans.end() || !stream_ok(s)) return CUFFT_INVALID_PLAN;
    it->second.stream = s;
    return CUFFT_SUCCESS;
}
cufftResult cufftSetWorkArea(cufftHandle plan, void* work) {
    Lock l(g_mutex);
    auto it = g_plans.find(plan);
    if (it == g_plans.end()) return CUFFT_INVALID_PLAN;
    it->second.work = work;
    return CUFFT_SUCCESS;
}

static void run_fft(const Plan& p, const void* in, void* out, cufftType type);

static cufftResult exec(cufftHandle plan, const void* in, void* out, cufftType type, const char* name) {
    Lock l(g_mutex);
    if (fail(name)) return CUFFT_EXEC_FAILED;
    auto it = g_plans.find(plan);
    if (it == g_plans.end() || !it->second.made) return CUFFT_INVALID_PLAN;
    const Plan& p = it->second;
    if (p.type != type) return CUFFT_INVALID_TYPE;
    // without auto-allocation the work area must be a live device buffer of the size the plan asked for
    if (!p.auto_alloc && p.work_size && (!p.work || !device_range_ok(p.work, p.work_size))) return CUFFT_EXEC_FAILED;
    const long long n = p.n, bins = n / 2 + 1;
    const size_t in_elem = type == CUFFT_R2C ? sizeof(float) : sizeof(cufftComplex);
    const size_t out_elem = type == CUFFT_R2C ? sizeof(cufftComplex) : sizeof(float);
    const long long in_len = type == CUFFT_R2C ? n : bins, out_len = type == CUFFT_R2C ? bins : n;
    if (!device_range_ok(in, ((p.batch - 1) * p.idist + in_len) * in_elem) ||
        !device_range_ok(out, ((p.batch - 1) * p.odist + out_len) * out_elem))
        return CUFFT_EXEC_FAILED;
    enqueue(p.stream, Op{[p, in, out, type] { run_fft(p, in, out, type); }, nullptr, nullptr});
    return CUFFT_SUCCESS;
}

static void run_fft(const Plan& p, const void* in, void* out, cufftType type) {
    const long long n = p.n, bins = n / 2 + 1;
    std::vector<std::complex<double>> a(n);
    for (long long b = 0; b < p.batch; ++b) {
        if (type == CUFFT_R2C) {
            const float* x = static_cast<const float*>(in) + b * p.idist;
            for (long long j = 0; j < n; ++j) a[j] = x[j];
            fft(a, false);
            cufftComplex* y = static_cast<cufftComplex*>(out) + b * p.odist;
            for (long long k = 0; k < bins; ++k) y[k] = {float(a[k].real()), float(a[k].imag())};
        } else {
            const cufftComplex* x = static_cast<const cufftComplex*>(in) + b * p.idist;
            for (long long k = 0; k < bins; ++k) a[k] = {x[k].x, x[k].y};
            a[0].imag(0);
            if (n % 2 == 0) a[n / 2].imag(0);
            for (long long k = bins; k < n; ++k) a[k] = std::conj(a[n - k]);
            fft(a, true);
            float* y = static_cast<float*>(out) + b * p.odist;
            for (long long j = 0; j < n; ++j) y[j] = float(a[j].real());
        }
    }
}

cufftResult cufftExecR2C(cufftHandle plan, cufftReal* idata, cufftComplex* odata) {
    return exec(plan, idata, odata, CUFFT_R2C, "cufftExecR2C");
}
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex* idata, cufftReal* odata) {
    return exec(plan, idata, odata, CUFFT_C2R, "cufftExecC2R");
}
