// Fork-join threads for the CPU pipeline's DSP stages, and one stage thread that runs a chunk's DSP while the
// caller's thread runs the network on another chunk (docs/architecture.md §4.7).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace fastsep {
namespace cpu {

class ThreadPool {
public:
    // `threads` in all, the calling thread included (at least 1)
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const noexcept { return static_cast<int>(workers_.size()) + 1; }

    // fn(i) for every i in [0, n), spread over the workers and the calling thread; returns when all are done and
    // rethrows the first exception. One parallel_for at a time (callers are serialised).
    void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

private:
    void work();
    void run_items();

    std::vector<std::thread> workers_;  // started in the constructor's body, after every member below
    std::mutex call_mutex_;  // one parallel_for at a time
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(int64_t)>* fn_ = nullptr;
    int64_t n_ = 0, next_ = 0, finished_ = 0;
    uint64_t generation_ = 0;
    int busy_ = 0;  // workers inside the current job
    std::exception_ptr error_;
    bool stop_ = false;
};

// One thread running queued jobs in order; each job's result (or exception) comes back through its future.
class StageThread {
public:
    StageThread();
    ~StageThread();
    StageThread(const StageThread&) = delete;
    StageThread& operator=(const StageThread&) = delete;

    std::future<void> submit(std::function<void()> job);

private:
    void work();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::packaged_task<void()>> jobs_;
    bool stop_ = false;
    std::thread thread_;  // last: started once everything it uses exists
};

}  // namespace cpu
}  // namespace fastsep
