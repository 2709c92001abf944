// Streaming sample-rate conversion of interleaved float32 audio (docs/architecture.md §4.7): a band-limited
// (windowed-sinc, polyphase) resampler whose output does not depend on how the input is cut into blocks and whose
// filter delay is compensated, so a song at any rate goes to the model's 44.1 kHz and its stems come back.
#pragma once

#include <cstdint>
#include <vector>

namespace fastsep {
namespace cpu {

class Resampler {
public:
    // InvalidArgument for rates outside [1000, 768000] or channels outside [1, 64]
    Resampler(int in_rate, int out_rate, int channels);
    ~Resampler();
    Resampler(const Resampler&) = delete;
    Resampler& operator=(const Resampler&) = delete;

    int in_rate() const noexcept;
    int out_rate() const noexcept;
    int channels() const noexcept;

    // Append to `out` the output frames that `frames` more input frames complete (interleaved, channels each).
    // StateError after finish (until reset).
    void process(const float* in, int64_t frames, std::vector<float>& out);
    // The input has ended: append the rest, so that the output holds exactly output_length(input frames) frames
    // in all (the filter's tail is trimmed or zero-padded to that). StateError when called twice (until reset).
    void finish(std::vector<float>& out);
    // Start a new stream (the filter's state is cleared).
    void reset();

    // Output frames for `frames` input frames: round(frames * out_rate / in_rate) (as fastsep.resample)
    static int64_t output_length(int64_t frames, int in_rate, int out_rate);
    // Input frames needed beyond those it maps to before an output frame is final (the filter's look-ahead)
    int64_t lookahead() const noexcept;

private:
    struct State;
    State* state_;
};

}  // namespace cpu
}  // namespace fastsep
