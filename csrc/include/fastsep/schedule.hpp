// The chunk schedule shared by the CUDA and the CPU pipelines (docs/spec.md §3, §12; docs/architecture.md §4.3):
// which segments a chunk holds, which frames and input samples it reads, which output samples are final after it,
// and when a streamed input has enough samples for it. A change to the schedule is made here, once.
//
// Segment s starts at frame s*hop (hop = T: Spleeter's non-overlapping segments). A chunk is up to `batch`
// consecutive segments; it holds frames [first, first + span) and, after it, frames [first, first + count) are
// final (no later segment holds them), so output samples [t0, t0 + count*H) are final, t0 = first*H - N.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "fastsep/dsp_math.cuh"
#include "fastsep/sizes.hpp"

namespace fastsep {

struct Chunk {
    int64_t seg0 = 0;   // song index of the first segment
    int b = 0;          // segments in the chunk
    int64_t first = 0;  // first frame
    int64_t span = 0;   // frames the segments hold: (b - 1) * hop + T
    int64_t count = 0;  // frames final after the chunk: b * hop, or span for the song's last chunk
    bool last = false;  // the song's last chunk
};

class Schedule {
public:
    // hop 0 means T (Spleeter's segments)
    Schedule(int T, int N, int H, int hop, int batch)
        : T_(T), N_(N), H_(H), hop_(hop == 0 ? T : hop), B_(batch) {
        require_range("T", T, 1, std::numeric_limits<int>::max());
        require_range("segment_hop", hop_, 1, T);
        require_range("batch", batch, 1, std::numeric_limits<int>::max());
        require_range("frame_step", H, 1, N);
    }

    int T() const noexcept { return T_; }
    int hop() const noexcept { return hop_; }
    int batch() const noexcept { return B_; }
    bool overlapped() const noexcept { return hop_ < T_; }
    // segments on either side whose frames can share a frame with a segment (the blend's reach)
    int64_t reach() const noexcept { return (T_ + hop_ - 1) / hop_; }

    // segments of a song of `samples`: they start every hop frames until one reaches the last frame
    int64_t segments_for(int64_t samples) const {
        const int64_t frames = dsp::n_frames(require_samples("samples", samples), N_, H_);
        return frames <= T_ ? 1 : (frames - T_ + hop_ - 1) / hop_ + 1;
    }

    // The chunk from segment seg0 of a song of `segments` segments (a negative count: not known yet, and the chunk
    // is a full one that is not the song's last).
    Chunk chunk(int64_t seg0, int64_t segments) const {
        Chunk c;
        c.seg0 = seg0;
        c.b = segments < 0 ? B_ : static_cast<int>(std::min<int64_t>(B_, segments - seg0));
        c.first = seg0 * hop_;
        c.span = int64_t(c.b - 1) * hop_ + T_;
        c.last = segments >= 0 && seg0 + c.b >= segments;
        c.count = c.last ? c.span : int64_t(c.b) * hop_;
        return c;
    }

    int64_t t0(const Chunk& c) const noexcept { return c.first * H_ - N_; }
    // input samples the chunk's frames read: [input_begin, input_end), zero outside the song
    int64_t input_begin(const Chunk& c) const noexcept { return t0(c); }
    int64_t input_end(const Chunk& c) const noexcept { return (c.first + c.span - 1) * H_; }
    // first input sample that a chunk from segment seg0 on still reads
    int64_t first_needed(int64_t seg0) const noexcept { return std::max<int64_t>(seg0 * hop_ * H_ - N_, 0); }

    // Samples a streamed input needs before the full chunk from seg0 can run: its frames' samples, and enough to
    // know that segment i exists (it is not the song's last chunk, and with overlapped segments every segment
    // that shares a frame with it exists, so its blend weights are final). Segment i exists when the song has
    // more than (i - 1)*hop + T frames, i.e. more than ((i - 1)*hop + T)*H - N samples.
    int64_t samples_for_chunk(int64_t seg0) const noexcept {
        const int64_t i = seg0 + B_ + (overlapped() ? std::max<int64_t>(reach() - 2, 0) : 0);
        const int64_t more_than = ((i - 1) * hop_ + T_) * H_ - N_;
        return std::max(more_than + 1, input_end(chunk(seg0, -1)));
    }

private:
    int T_, N_, H_, hop_, B_;
};

}  // namespace fastsep
