// The GPU pipeline of one model configuration (docs/architecture.md §2, steps 1, 3, 4, 5 on the GPU;
// step 2, the network, is a caller-supplied callback enqueued on the pipeline's stream).
//
// Songs of any length stream through chunks of at most max_batch segments; the overlap-add tail (N - H samples
// per stem and channel) is carried from chunk to chunk, so device memory does not depend on the song's length.
//
// Host I/O runs on two copy streams beside the compute stream, with double-buffered device chunks and events
// between them: chunk k+1's upload and chunk k-1's download overlap chunk k's DSP and network. Page-locked host
// memory (HostMemory::Direct, or Register when registration succeeds) is copied by DMA straight from the caller's
// input and into the caller's output, with no host synchronisation until the end; pageable memory goes through
// pinned staging buffers (a CPU memcpy per chunk, overlapped with the GPU's work on the neighbouring chunks).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "fastsep/cuda_raii.hpp"
#include "fastsep/dsp_math.cuh"
#include "fastsep/kernels.hpp"
#include "fastsep/schedule.hpp"

namespace fastsep {

struct PipelineConfig {
    int n_stems = 2;
    int F = 1024;             // bins fed to the network
    int T = 512;              // frames per segment
    int frame_length = 4096;  // N, also the FFT size
    int frame_step = 1024;    // H
    float separation_exponent = 2.0f;
    dsp::MaskExtension mask_extension = dsp::MaskExtension::Zeros;
    NetDType dtype = NetDType::Float32;  // network input/output
    int max_batch = 4;        // segments per chunk
    // frames between segment starts: 0 or T, Spleeter's non-overlapping segments (docs/spec.md §3.1); less than T,
    // overlapped segments cross-faded per frame (§12)
    int segment_hop = 0;
};

// How host memory of the caller is reached (ignored for device memory).
enum class HostMemory : int {
    Stage = 0,     // pageable: through pinned staging buffers
    Direct = 1,    // already page-locked (cudaMallocHost, cudaHostRegister): DMA straight
    Register = 2,  // cudaHostRegister for the call, DMA straight, unregister; Stage if registration fails
};

// Where the waveform comes from: (L, 2) float32 contiguous, on the host or on the device.
struct PipelineInput {
    const float* data = nullptr;
    int64_t samples = 0;
    bool on_device = false;
    HostMemory host = HostMemory::Stage;
    // With device input or output: the caller's work on those buffers is ordered on this stream (default: the
    // legacy default stream); the pipeline waits for it before touching them.
    cudaStream_t producer = nullptr;
    bool has_producer = false;
};

// Where the stems go: (n_stems, L, 2) float32 contiguous, on the host or on the device.
struct PipelineOutput {
    float* data = nullptr;
    bool on_device = false;
    HostMemory host = HostMemory::Stage;
};

// How the last separate() reached host memory (tests and benchmarks).
struct HostPathReport {
    HostMemory input = HostMemory::Stage, output = HostMemory::Stage;  // Direct after a successful Register
    bool input_registered = false, output_registered = false;
};

class Pipeline {
public:
    // Called once per chunk with the chunk's batch size b <= max_batch; must enqueue on stream() the network
    // reading net_input() (b, 2, T, F) and writing net_output() (b, S, 2, T, F), both in dtype.
    using Network = std::function<void(int batch)>;

    // InvalidArgument for a configuration out of range or whose buffers would pass the limits of sizes.hpp,
    // before anything is allocated
    explicit Pipeline(const PipelineConfig& config);
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;
    Pipeline(Pipeline&&) = delete;
    Pipeline& operator=(Pipeline&&) = delete;
    ~Pipeline() = default;

    const PipelineConfig& config() const noexcept { return cfg_; }
    int device() const noexcept { return device_; }
    cudaStream_t stream() const noexcept { return stream_.get(); }
    int bins() const noexcept { return K_; }

    void* net_input() const noexcept { return net_input_.data(); }
    void* net_output() const noexcept { return net_output_.data(); }
    std::array<int64_t, 4> net_input_shape(int batch) const { return {batch, 2, cfg_.T, cfg_.F}; }
    std::array<int64_t, 5> net_output_shape(int batch) const { return {batch, cfg_.n_stems, 2, cfg_.T, cfg_.F}; }

    // Built-in test network, estimates_s = x * sigmoid(a_s * x + b_s), used when separate() gets no network.
    void use_known_network(const std::vector<float>& a, const std::vector<float>& b);
    // Enqueue the known network on the pipeline stream for `batch` segments.
    void run_known_network(int batch);

    // Separate one song. Returns when the output is complete (host or device). An empty network means the
    // known network. Not reentrant: concurrent calls on one pipeline are serialised.
    void separate(const PipelineInput& input, const PipelineOutput& output, const Network& network);

    // Synchronous helpers for tests and debugging: the first `batch` segments of the network buffers.
    void copy_net_input_to_host(void* dst, int batch);
    void copy_net_output_from_host(const void* src, int batch);

    void synchronize() const {
        stream_.synchronize();
        h2d_.synchronize();
        d2h_.synchronize();
    }
    cudaStream_t upload_stream() const noexcept { return h2d_.get(); }
    cudaStream_t download_stream() const noexcept { return d2h_.get(); }
    const HostPathReport& last_host_path() const noexcept { return last_path_; }
    std::size_t device_bytes() const noexcept;

    // segments (network inputs) of a song of `samples` in [0, kMaxSamples] (InvalidArgument outside)
    int64_t segments_for(int64_t samples) const;
    // the chunk schedule this pipeline follows (shared with the CPU pipeline)
    Schedule schedule() const { return Schedule(cfg_.T, N_, H_, hop_, B_); }
    // InvalidArgument unless 1 <= batch <= max_batch
    void require_batch(int batch) const;

private:
    struct Plans {
        FftPlan r2c, c2r;
    };
    Plans& plans_for(int batch);
    void set_work_area(std::size_t bytes);
    void ensure_host_input(bool staged);
    void ensure_host_output(bool staged);
    void separate_locked(const PipelineInput& input, const PipelineOutput& output, const Network& network);
    bool overlapped() const noexcept { return hop_ < cfg_.T; }

    PipelineConfig cfg_;
    int N_, H_, K_, S_, B_;
    int hop_;             // frames between segment starts (T: Spleeter's segments)
    int R_;               // complex slots per spectrum row: K rounded up to even, so rows are 16-byte aligned
    int64_t row_stride_;  // floats per frame row: 2R, the in-place FFT layout
    int device_ = 0;

    Stream stream_;            // DSP and network
    Stream h2d_, d2h_;         // uploads of host input, downloads to host output
    DeviceBuffer analysis_window_, synthesis_window_;
    std::size_t input_bytes_ = 0, output_bytes_ = 0;  // of input_/pinned_in_ and out_chunk_/pinned_out_
    DeviceBuffer input_[2];    // ((B*T - 1)*H + N) samples x 2: the host input of one chunk (double-buffered)
    DeviceBuffer spectrum_;    // (2, B*T, R) complex, in place frames -> spectrum
    DeviceBuffer net_input_, net_output_;
    DeviceBuffer mask_mean_;   // (S, 2, B*T)
    DeviceBuffer stems_;       // (S, 2, B*T, R) complex, in place -> real frames
    DeviceBuffer tails_;       // 2 x (S, 2, N - H)
    DeviceBuffer fade_;        // T doubles, overlapped segments only
    DeviceBuffer blended_;     // (S, 2, B*T, F) float32 per-frame estimates, overlapped segments only
    DeviceBuffer blend_tails_; // 2 x (S, 2, T, F): blended sums carried between chunks, overlapped segments only
    DeviceBuffer out_chunk_[2];  // (S, B*T*H, 2): a chunk's host output on the device (double-buffered, first use)
    DeviceBuffer known_ab_;    // 2 x S floats
    bool known_ = false;

    std::map<int, Plans> plans_;
    DeviceBuffer work_area_;

    PinnedBuffer pinned_in_[2], pinned_out_[2];  // staging of pageable host memory (first use)
    // per slot: input uploaded (h2d_), input read by framing (stream_), output written (stream_), output
    // downloaded (d2h_)
    Event in_ready_[2], in_free_[2], out_ready_[2], out_free_[2], producer_ready_;
    HostPathReport last_path_;

    std::mutex mutex_;
};

}  // namespace fastsep
