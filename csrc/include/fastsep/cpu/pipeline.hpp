// The CPU pipeline (docs/architecture.md §4.7): the five steps of docs/spec.md on the host, one chunk loop with the
// segment hop of fastsep/schedule.hpp (so overlapped segments and full band come with it), streaming.
//
// Audio is pushed in blocks of any size; every chunk of segments whose samples are in runs inside push() (or
// finish()), and its finished samples become available to pull(). Within one call the chunks are pipelined: while
// the calling thread runs the network on chunk k, a stage thread finishes chunk k-1's stems and prepares chunk
// k+1's magnitudes, each step spread over the DSP threads. Memory depends on the chunk size, never on the song.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "fastsep/cpu/fft.hpp"
#include "fastsep/cpu/thread_pool.hpp"
#include "fastsep/dsp_math.cuh"
#include "fastsep/schedule.hpp"

namespace fastsep {
namespace cpu {

// Step 2: every stem's U-Net on a batch of segments. magnitudes (batch, 2, T, F) -> estimates (batch, S, 2, T, F),
// float32, C-contiguous; batch is always the pipeline's (a short last chunk is padded with zero segments).
class Network {
public:
    virtual ~Network() = default;
    virtual void run(const float* magnitudes, float* estimates, int batch) = 0;
};

struct Config {
    int n_stems = 2;
    int F = 1024;
    int T = 512;
    int frame_length = 4096;  // N
    int frame_step = 1024;    // H
    float separation_exponent = 2.0f;
    dsp::MaskExtension mask_extension = dsp::MaskExtension::Zeros;  // Average: full band (docs/spec.md §12)
    int segment_hop = 0;      // 0 or T: Spleeter's segments; less: overlapped segments, cross-faded
    int batch = 1;            // segments per network call
    int threads = 0;          // DSP threads (0: every core)
    bool overlap_stages = true;  // DSP of the neighbouring chunks beside the network (else one step after another)
};

class Pipeline {
public:
    // InvalidArgument for a configuration out of range
    Pipeline(const Config& config, std::shared_ptr<Network> network);
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    const Config& config() const noexcept { return cfg_; }
    const Schedule& schedule() const noexcept { return sched_; }
    // samples pushed before the first output sample can be pulled (without finish)
    int64_t latency() const noexcept { return sched_.samples_for_chunk(0); }

    // Forget the song: the next push starts a new one. Also the way out of an error.
    void reset();
    // (n, 2) interleaved float32 samples. InputError for NaN/Inf samples (nothing of the block is kept), StateError
    // after finish or after an error (until reset).
    void push(const float* samples, int64_t n);
    // The song is complete: the rest of its samples become available.
    void finish();
    // samples of every stem ready to pull
    int64_t available() const noexcept;
    // the next n <= available() samples of each stem: stems[s] receives (n, 2) interleaved float32
    void pull(float* const* stems, int64_t n);

    // A whole song, in place: x (L, 2) -> out (S, L, 2); as reset, push, finish, pull, with no copies.
    void separate(const float* x, int64_t samples, float* out);

    // Called on the calling thread after each chunk's network: (segments done, segments in all; 0 while the song
    // is not complete). An exception from it fails the song (a way to cancel).
    using Progress = std::function<void(int64_t, int64_t)>;
    void set_progress(Progress progress) { progress_ = std::move(progress); }

    int64_t received() const noexcept { return received_; }
    int64_t segments_done() const noexcept { return next_segment_; }
    bool finished() const noexcept { return finished_; }

private:
    struct Slot {
        Chunk chunk;
        std::vector<cfloat> spectrum;  // (2, span, K)
        std::vector<float> net_in;     // (batch, 2, T, F)
        std::vector<float> net_out;    // (batch, S, 2, T, F)
    };
    // where the chunk's frames read the song: x[2*(t - origin) + c] for t in [origin, origin + len)
    struct InputView {
        const float* x = nullptr;
        int64_t origin = 0, len = 0;
    };

    void process(bool final);
    void run_chunks(const std::vector<Chunk>& chunks);
    void analyze(Slot& slot, const InputView& in);
    void synthesize(Slot& slot, int64_t length);
    void blend(const Slot& slot);
    void synthesize_row(const Slot& slot, int s, int c, int64_t length);
    void emit(int s, int c, const float* acc, int64_t t0, int64_t n, int64_t length);
    void check_usable() const;

    Config cfg_;
    Schedule sched_;
    std::shared_ptr<Network> network_;
    Progress progress_;
    int N_, H_, K_, S_;
    std::vector<float> analysis_window_, synthesis_window_;
    std::vector<double> fade_;  // overlapped segments: the fade of one segment's frames

    ThreadPool pool_;
    std::unique_ptr<StageThread> stage_;
    Slot slots_[3];

    // the song so far
    std::vector<float> input_;  // samples [input_origin_, received_) of a streamed song
    int64_t input_origin_ = 0;
    int64_t received_ = 0;
    int64_t next_segment_ = 0;
    int64_t total_segments_ = -1;  // known once the song is complete
    bool finished_ = false;
    bool failed_ = false;
    const float* direct_input_ = nullptr;  // separate(): the caller's song, read in place

    // synthesis state, carried from chunk to chunk
    std::vector<float> tails_;        // (S, 2, N - H): overlap-add sums not yet final
    std::vector<float> blend_tails_;  // (S, 2, T, F): blended estimates of frames later segments still add to
    int64_t blend_tail_frames_ = 0;
    std::vector<float> blended_;      // (S, 2, span, F)
    std::vector<float> weights_;      // (batch, T): blend weight of each frame of the chunk's segments

    // output: the caller's (S, L, 2) in separate(), else per stem (n, 2) samples not yet pulled
    float* direct_output_ = nullptr;
    std::vector<std::vector<float>> ready_;
    int64_t ready_begin_ = 0;  // samples of ready_ already pulled
    int64_t emitted_ = 0;      // samples of each stem final so far
    int64_t write_at_ = 0;     // where in ready_ the current chunk's first sample goes
};

}  // namespace cpu
}  // namespace fastsep
