// stream_live: fastsep's C API driven as a live input would drive it (docs/c_api.md, "Streaming and latency").
//
//   stream_live MODEL.onnx [SECONDS [SEGMENT_FRAMES]]
//
// Generates SECONDS (default 20) of stereo 44.1 kHz test music (deterministic chords and noise bursts), pushes it
// in 10 ms blocks as an audio callback would deliver them, and after each push pulls every frame that is ready.
// It reports the separator's latency (frames in before the first can come out, in ms), when the first output came,
// the longest push (a push that completes a segment runs its network: push from a worker thread, never from the
// audio callback), the real-time factor (processing time / audio time), and checks that the streamed stems equal
// one fastsep_separate call on the same input. SEGMENT_FRAMES: 0 (the model's 512 frames, 11.9 s) or 64/128/256
// for a lower latency.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fastsep.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The separator as an owner (fastsep_close on every path out).
struct Closer {
  void operator()(fastsep_separator* s) const { fastsep_close(s); }
};
using Separator = std::unique_ptr<fastsep_separator, Closer>;

// Chords with a plucked envelope on each beat, a little noise, left and right slightly different.
std::vector<float> test_music(int64_t frames, int rate) {
  std::vector<float> x(static_cast<size_t>(frames) * 2);
  const double pi = 3.14159265358979323846;
  const double roots[] = {220.0, 174.61, 261.63, 196.0};
  uint32_t noise = 12345;
  for (int64_t i = 0; i < frames; ++i) {
    const double t = static_cast<double>(i) / rate;
    const double beat = std::fmod(t, 0.5);
    const double root = roots[static_cast<int64_t>(t / 2.0) % 4];
    const double tone = std::sin(2 * pi * root * t) + 0.6 * std::sin(2 * pi * root * 1.25 * t) +
                        0.4 * std::sin(2 * pi * root * 1.5 * t);
    noise = noise * 1664525u + 1013904223u;
    const double hiss = (static_cast<double>(noise >> 8) / 16777216.0 - 0.5) * std::exp(-beat * 30.0);
    x[2 * i] = static_cast<float>(0.15 * tone * std::exp(-beat * 4.0) + 0.2 * hiss);
    x[2 * i + 1] = static_cast<float>(0.13 * tone * std::exp(-beat * 3.0) + 0.25 * hiss);
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx [SECONDS [SEGMENT_FRAMES]]\n", argv[0]);
    return 2;
  }
  const double seconds = argc > 2 ? std::atof(argv[2]) : 20.0;
  const int segment_frames = argc > 3 ? std::atoi(argv[3]) : 0;
  if (!(seconds > 0.0 && seconds <= 3600.0)) {
    std::fprintf(stderr, "SECONDS must be in (0, 3600]\n");
    return 2;
  }
  const int rate = 44100, channels = 2;

  fastsep_options options;
  fastsep_options_init(&options);
  options.model = argv[1];
  options.sample_rate = rate;
  options.channels = channels;
  options.segment_frames = segment_frames;
  fastsep_separator* raw = nullptr;
  const auto load_start = Clock::now();
  if (fastsep_open(&options, &raw) != FASTSEP_OK) {
    std::fprintf(stderr, "%s\n", fastsep_last_error(nullptr));
    return 1;
  }
  Separator separator(raw);
  const double load = seconds_since(load_start);

  const int stems = fastsep_stem_count(separator.get());
  const int64_t frames = static_cast<int64_t>(seconds * rate);
  const std::vector<float> input = test_music(frames, rate);
  const int64_t block = rate / 100;  // 10 ms

  // Streamed: push each 10 ms block, pull whatever is ready into the stems' ends.
  std::vector<std::vector<float>> streamed(stems, std::vector<float>(input.size()));
  int64_t pulled = 0, first_output_at = -1;
  double longest_push = 0.0;
  auto pull_ready = [&]() -> bool {
    const int64_t ready = fastsep_available(separator.get());
    if (ready < 0) return false;
    if (ready == 0) return true;
    std::vector<float*> out(stems);
    for (int s = 0; s < stems; ++s) out[s] = streamed[s].data() + pulled * channels;
    if (fastsep_pull(separator.get(), out.data(), ready) != FASTSEP_OK) return false;
    pulled += ready;
    return true;
  };
  const auto stream_start = Clock::now();
  for (int64_t at = 0; at < frames; at += block) {
    const int64_t n = std::min(block, frames - at);
    const auto push_start = Clock::now();
    if (fastsep_push(separator.get(), input.data() + at * channels, n) != FASTSEP_OK || !pull_ready()) {
      std::fprintf(stderr, "%s\n", fastsep_last_error(separator.get()));
      return 1;
    }
    longest_push = std::max(longest_push, seconds_since(push_start));
    if (first_output_at < 0 && pulled > 0) first_output_at = at + n;
  }
  if (fastsep_finish(separator.get()) != FASTSEP_OK || !pull_ready()) {
    std::fprintf(stderr, "%s\n", fastsep_last_error(separator.get()));
    return 1;
  }
  const double processing = seconds_since(stream_start);
  if (pulled != frames) {
    std::fprintf(stderr, "pulled %lld frames of %lld\n", static_cast<long long>(pulled),
                 static_cast<long long>(frames));
    return 1;
  }

  // One call on the same input: streaming in 10 ms blocks must give the same stems.
  std::vector<std::vector<float>> whole(stems, std::vector<float>(input.size()));
  std::vector<float*> out(stems);
  for (int s = 0; s < stems; ++s) out[s] = whole[s].data();
  if (fastsep_separate(separator.get(), input.data(), frames, out.data()) != FASTSEP_OK) {
    std::fprintf(stderr, "%s\n", fastsep_last_error(separator.get()));
    return 1;
  }
  double worst_snr = INFINITY;
  for (int s = 0; s < stems; ++s) {
    double signal = 0.0, error = 0.0;
    for (size_t i = 0; i < input.size(); ++i) {
      const double d = static_cast<double>(whole[s][i]) - streamed[s][i];
      signal += static_cast<double>(whole[s][i]) * whole[s][i];
      error += d * d;
    }
    if (error > 0.0) worst_snr = std::min(worst_snr, 10.0 * std::log10(signal / error));
  }

  const int64_t latency = fastsep_latency(separator.get());
  std::printf("model: %s, %d stems, loaded in %.2f s\n", argv[1], stems, load);
  std::printf("latency: %lld frames = %.1f ms (segment_frames %d)\n", static_cast<long long>(latency),
              1000.0 * latency / rate, segment_frames);
  if (first_output_at >= 0) {
    std::printf("first output after %lld frames = %.1f ms of input\n", static_cast<long long>(first_output_at),
                1000.0 * first_output_at / rate);
  } else {
    std::printf("first output at the end of the input (shorter than the latency)\n");
  }
  std::printf("longest push: %.1f ms\n", 1000.0 * longest_push);
  std::printf("%.2f s of audio in %.2f s: real-time factor %.3f (%.1fx real time)\n", seconds, processing,
              processing / seconds, seconds / processing);
  if (std::isinf(worst_snr)) {
    std::printf("streamed == one call: bit-identical\n");
  } else {
    std::printf("streamed vs one call: %.1f dB\n", worst_snr);
  }
  return 0;
}
