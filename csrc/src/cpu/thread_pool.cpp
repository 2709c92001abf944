#include "fastsep/cpu/thread_pool.hpp"

#include <algorithm>

namespace fastsep {
namespace cpu {

ThreadPool::ThreadPool(int threads) {
    for (int i = 1; i < std::max(threads, 1); ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_items() {
    // items are claimed one at a time under the lock: they are coarse (a block of frames, a stem's channel)
    for (;;) {
        int64_t i;
        const std::function<void(int64_t)>* fn;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (next_ >= n_ || error_) return;
            i = next_++;
            fn = fn_;
        }
        try {
            (*fn)(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mutex_);
        ++finished_;
    }
}

void ThreadPool::work() {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            ++busy_;
        }
        run_items();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            --busy_;
        }
        done_.notify_all();
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    std::lock_guard<std::mutex> call(call_mutex_);
    if (workers_.empty() || n == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        fn_ = &fn;
        n_ = n;
        next_ = 0;
        finished_ = 0;
        error_ = nullptr;
        ++generation_;
    }
    wake_.notify_all();
    run_items();
    std::exception_ptr error;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        // every claimed item finished and no worker still inside this job (it may not read fn_ after we return)
        done_.wait(lock, [&] { return busy_ == 0 && (finished_ == next_); });
        error = error_;
        fn_ = nullptr;
        n_ = 0;
    }
    if (error) std::rethrow_exception(error);
}

StageThread::StageThread() : thread_([this] { work(); }) {}

StageThread::~StageThread() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

std::future<void> StageThread::submit(std::function<void()> job) {
    std::packaged_task<void()> task(std::move(job));
    auto future = task.get_future();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(task));
    }
    wake_.notify_one();
    return future;
}

void StageThread::work() {
    for (;;) {
        std::packaged_task<void()> task;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
            if (jobs_.empty()) return;  // stopping, nothing left
            task = std::move(jobs_.front());
            jobs_.pop_front();
        }
        task();  // an exception is stored in the task's future
    }
}

}  // namespace cpu
}  // namespace fastsep
