// Streaming polyphase windowed-sinc resampler (docs/architecture.md §4.7).
//
// With g = gcd(in, out), L = out / g phases and a step of M = in / g input frames per L output frames, output frame
// k sits at input time t_k = k * M / L = n_k + p_k / L (n_k = floor(k M / L), p_k = k M mod L): no delay to
// compensate, the kernel is centred on t_k. y_k = sum_i x[n_k + i] h(p_k / L - i), h a Kaiser-windowed sinc whose
// cutoff sits midway between the passband end (kPassband of the lower Nyquist) and the lower Nyquist itself (the
// stopband starts there, so nothing aliases into the band kept). The L rows h(p / L - i) are computed in double
// once and stored as float, zero-padded at the front to a multiple of kLane taps so the dot product needs no
// remainder loop; the input is kept planar (one run of frames per channel) with the history the next output needs,
// so the output does not depend on how the input is cut into blocks. Ratios with very many phases (44100 -> 44101)
// compute each output's row from a finely sampled kernel instead of a table (linear interpolation in double).
#include "fastsep/cpu/resampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "fastsep/error.hpp"

namespace fastsep {
namespace cpu {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kPassband = 0.913;    // passband end, of the lower Nyquist (about libsoxr VHQ's)
constexpr double kAttenuation = 140.0;  // dB: about float32's own floor for full-scale audio
constexpr int kLane = 32;               // taps per row are a multiple of this: 32 independent sums in the dot product
constexpr int64_t kMaxTable = int64_t(1) << 21;  // coefficients in a precomputed table (8 MiB)
constexpr int kFine = 4096;             // kernel samples per sinc zero-crossing spacing without a table

double bessel_i0(double x) {
    // power series: sum ((x/2)^k / k!)^2; converges quickly for the beta used here (~14.5)
    double sum = 1.0, term = 1.0;
    const double q = x * x / 4.0;
    for (int k = 1; k < 500; ++k) {
        term *= q / (double(k) * k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

// Dot products of one coefficient row with NC channels' runs of input, kLane independent partial sums each (in
// registers: GCC's vector extensions, 8 floats, one AVX register or two SSE ones; four chains per channel hide the
// add or FMA latency). The sums are reduced in a fixed order, so an output depends on its inputs alone, never on
// the block sizes.
#if defined(__GNUC__)
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // unaligned loads

template <int NC>
inline __attribute__((always_inline)) void dot_rows(const float* __restrict c, const float* const* x, int64_t n,
                                                    float* res) {
    static_assert(kLane == 32, "four vectors of 8 per step");
    v8 acc[NC][4] = {};
    for (int64_t j = 0; j < n; j += kLane) {
        const v8 c0 = *reinterpret_cast<const v8u*>(c + j), c1 = *reinterpret_cast<const v8u*>(c + j + 8);
        const v8 c2 = *reinterpret_cast<const v8u*>(c + j + 16), c3 = *reinterpret_cast<const v8u*>(c + j + 24);
        for (int ch = 0; ch < NC; ++ch) {
            const float* xs = x[ch] + j;
            acc[ch][0] += c0 * *reinterpret_cast<const v8u*>(xs);
            acc[ch][1] += c1 * *reinterpret_cast<const v8u*>(xs + 8);
            acc[ch][2] += c2 * *reinterpret_cast<const v8u*>(xs + 16);
            acc[ch][3] += c3 * *reinterpret_cast<const v8u*>(xs + 24);
        }
    }
    for (int ch = 0; ch < NC; ++ch) {
        const v8 v = (acc[ch][0] + acc[ch][2]) + (acc[ch][1] + acc[ch][3]);
        res[ch] = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
    }
}
#else
template <int NC>
inline void dot_rows(const float* c, const float* const* x, int64_t n, float* res) {
    for (int ch = 0; ch < NC; ++ch) {
        float acc[kLane] = {};
        for (int64_t j = 0; j < n; j += kLane)
            for (int u = 0; u < kLane; ++u) acc[u] += c[j + u] * x[ch][j + u];
        for (int w = kLane / 2; w > 0; w /= 2)
            for (int u = 0; u < w; ++u) acc[u] += acc[u + w];
        res[ch] = acc[0];
    }
}
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define FASTSEP_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FASTSEP_CLONES
#endif

// one output frame of `channels` channels: pairs of channels share the coefficient loads
FASTSEP_CLONES void output_frame(const float* c, const float* const* x, int channels, int64_t n, float* res) {
    int ch = 0;
    for (; ch + 2 <= channels; ch += 2) dot_rows<2>(c, x + ch, n, res + ch);
    if (ch < channels) dot_rows<1>(c, x + ch, n, res + ch);
}

}  // namespace

struct Resampler::State {
    int in_rate = 0, out_rate = 0, channels = 0;
    bool copy = false;
    int64_t L = 1, M = 1, Mq = 0, Mr = 0;  // M = Mq * L + Mr
    int64_t K = 0;       // taps i = K - taps + 1 .. K around n_k; lookahead K
    int64_t taps = 0;    // per row, a multiple of kLane
    double T = 0, fc = 0, beta = 0, i0beta = 1;  // half-width (input frames), cutoff (cycles per input frame)
    std::vector<float> table;                     // L rows of taps, or empty
    std::vector<double> fine;                     // kernel h(j * fine_step) without a table
    double fine_step = 0;                         // input frames between two samples of `fine`
    std::vector<float> row;                       // scratch row without a table
    std::vector<const float*> xp;                 // scratch: each channel's first input frame of an output

    // stream
    std::vector<std::vector<float>> buf;  // per channel, frames from absolute index buf_start
    int64_t buf_start = 0, received = 0, emitted = 0;
    int64_t n = 0, p = 0;                 // n_k, p_k of the next output
    bool finished = false;

    double kernel(double t) const {
        const double a = std::fabs(t);
        if (a >= T) return 0.0;
        const double r = a / T;
        const double w = bessel_i0(beta * std::sqrt(std::max(0.0, 1.0 - r * r))) / i0beta;
        const double s = a < 1e-300 ? 1.0 : std::sin(2.0 * kPi * fc * a) / (2.0 * kPi * fc * a);
        return 2.0 * fc * s * w;
    }

    double kernel_fine(double t) const {
        const double pos = std::fabs(t) / fine_step;
        const int64_t j = static_cast<int64_t>(pos);
        if (j + 1 >= static_cast<int64_t>(fine.size())) return 0.0;
        const double f = pos - double(j);
        return fine[j] + f * (fine[j + 1] - fine[j]);
    }

    void fill_row(int64_t phase, float* dst) const {
        const double frac = double(phase) / double(L);
        for (int64_t j = 0; j < taps; ++j) {
            const int64_t i = K - taps + 1 + j;
            const double t = frac - double(i);
            dst[j] = static_cast<float>(table.empty() && !fine.empty() ? kernel_fine(t) : kernel(t));
        }
    }

    void clear() {
        buf.assign(channels, std::vector<float>(copy ? 0 : static_cast<size_t>(taps - K), 0.0f));
        buf_start = copy ? 0 : -(taps - K);
        received = emitted = n = p = 0;
        finished = false;
    }

    // output frames whose inputs are all in (indices up to `avail` - 1), appended to out
    void run(int64_t avail, int64_t limit, std::vector<float>& out) {
        int64_t count = 0;
        for (int64_t nn = n, pp = p, e = emitted; nn + K < avail && e < limit; ++count, ++e) {
            nn += Mq;
            pp += Mr;
            if (pp >= L) pp -= L, ++nn;
        }
        if (count == 0) return;
        const int C = channels;
        const size_t base = out.size();
        out.resize(base + static_cast<size_t>(count * C));
        float* o = out.data() + base;
        xp.resize(static_cast<size_t>(C));
        for (int64_t k = 0; k < count; ++k) {
            const float* c;
            if (!table.empty()) {
                c = table.data() + p * taps;
            } else {
                fill_row(p, row.data());
                c = row.data();
            }
            const int64_t first = n + K - taps + 1 - buf_start;  // >= 0: the history is kept
            for (int ch = 0; ch < C; ++ch) xp[ch] = buf[ch].data() + first;
            output_frame(c, xp.data(), C, taps, o + k * C);
            n += Mq;
            p += Mr;
            if (p >= L) p -= L, ++n;
        }
        emitted += count;
        // drop the frames no later output reads, in large steps so the copies stay rare
        const int64_t keep_from = n + K - taps + 1;
        const int64_t drop = keep_from - buf_start;
        if (drop > 0 && drop >= static_cast<int64_t>(buf[0].size()) / 2 && drop >= 1024) {
            for (auto& b : buf) b.erase(b.begin(), b.begin() + drop);
            buf_start = keep_from;
        }
    }
};

Resampler::Resampler(int in_rate, int out_rate, int channels) : state_(nullptr) {
    auto rate_ok = [](int r) { return r >= 1000 && r <= 768000; };
    if (!rate_ok(in_rate) || !rate_ok(out_rate))
        throw InvalidArgument("resampler: rates must be in [1000, 768000] Hz, got " + std::to_string(in_rate) +
                              " -> " + std::to_string(out_rate));
    if (channels < 1 || channels > 64)
        throw InvalidArgument("resampler: channels must be in [1, 64], got " + std::to_string(channels));
    State* s = new State;
    s->in_rate = in_rate;
    s->out_rate = out_rate;
    s->channels = channels;
    s->copy = in_rate == out_rate;
    if (!s->copy) {
        const int64_t g = std::gcd(in_rate, out_rate);
        s->L = out_rate / g;
        s->M = in_rate / g;
        s->Mq = s->M / s->L;
        s->Mr = s->M % s->L;
        // Kaiser design (docs/architecture.md §4.7): transition from kPassband to 1 of the lower Nyquist
        const double rho = std::min(1.0, double(s->L) / double(s->M));  // lower Nyquist / input Nyquist
        const double width = 0.5 * rho * (1.0 - kPassband);              // transition, cycles per input frame
        s->fc = 0.5 * rho * (1.0 + kPassband) / 2.0;
        s->beta = 0.1102 * (kAttenuation - 8.7);
        s->i0beta = bessel_i0(s->beta);
        const double length = (kAttenuation - 7.95) / (2.285 * 2.0 * kPi * width);  // input frames
        s->T = length / 2.0;
        s->K = static_cast<int64_t>(std::ceil(s->T)) + 1;
        s->taps = (2 * s->K + kLane - 1) / kLane * kLane;
        if (s->L * s->taps <= kMaxTable) {
            s->table.resize(static_cast<size_t>(s->L * s->taps));
            for (int64_t ph = 0; ph < s->L; ++ph) s->fill_row(ph, s->table.data() + ph * s->taps);
        } else {
            // kFine samples per zero-crossing spacing of the sinc: linear interpolation errs by about
            // (pi / kFine)^2 / 8 of the kernel's peak, below -140 dB
            s->fine_step = 1.0 / (2.0 * s->fc * kFine);
            const int64_t count = static_cast<int64_t>(std::ceil(s->T / s->fine_step)) + 2;
            s->fine.resize(static_cast<size_t>(count));
            for (int64_t j = 0; j < count; ++j) s->fine[j] = s->kernel(double(j) * s->fine_step);
            s->row.resize(static_cast<size_t>(s->taps));
        }
    }
    s->clear();
    state_ = s;
}

Resampler::~Resampler() { delete state_; }

int Resampler::in_rate() const noexcept { return state_->in_rate; }
int Resampler::out_rate() const noexcept { return state_->out_rate; }
int Resampler::channels() const noexcept { return state_->channels; }
int64_t Resampler::lookahead() const noexcept { return state_->copy ? 0 : state_->K; }

void Resampler::process(const float* in, int64_t frames, std::vector<float>& out) {
    State& s = *state_;
    if (frames < 0) throw InvalidArgument("resampler: negative frame count");
    if (frames > 0 && in == nullptr) throw InvalidArgument("resampler: null input");
    if (s.finished) throw StateError("resampler: process after finish (reset first)");
    const int C = s.channels;
    if (s.copy) {
        out.insert(out.end(), in, in + frames * C);
        s.received += frames;
        s.emitted += frames;
        return;
    }
    // in pieces, so the planar history stays small (cache) however long the block
    constexpr int64_t kPiece = 8192;
    out.reserve(out.size() + static_cast<size_t>(
                                 (output_length(s.received + frames, s.in_rate, s.out_rate) - s.emitted + 1) * C));
    for (int64_t at = 0; at < frames; at += kPiece) {
        const int64_t m = std::min(kPiece, frames - at);
        const float* src = in + at * C;
        for (int ch = 0; ch < C; ++ch) {
            auto& b = s.buf[ch];
            const size_t old = b.size();
            b.resize(old + static_cast<size_t>(m));
            float* d = b.data() + old;
            for (int64_t t = 0; t < m; ++t) d[t] = src[t * C + ch];
        }
        s.received += m;
        s.run(s.received, INT64_MAX, out);
    }
}

void Resampler::finish(std::vector<float>& out) {
    State& s = *state_;
    if (s.finished) throw StateError("resampler: finish twice (reset first)");
    s.finished = true;
    const int64_t want = output_length(s.received, s.in_rate, s.out_rate);
    if (s.copy) return;
    // the input continues with zeros: the last output wanted needs n_k + K < received + K + 1
    for (auto& b : s.buf) b.resize(b.size() + static_cast<size_t>(s.K + 1), 0.0f);
    s.run(s.received + s.K + 1, want, out);
    if (s.emitted < want) {  // unreachable in theory (n_k < received for every k < want); keeps the length exact
        out.resize(out.size() + static_cast<size_t>((want - s.emitted) * s.channels), 0.0f);
        s.emitted = want;
    }
}

void Resampler::reset() { state_->clear(); }

int64_t Resampler::output_length(int64_t frames, int in_rate, int out_rate) {
    if (frames < 0) throw InvalidArgument("resampler: negative frame count");
    if (in_rate <= 0 || out_rate <= 0) throw InvalidArgument("resampler: rates must be positive");
    if (in_rate == out_rate) return frames;
    // exact round(frames * out / in), ties to even as Python's round (fastsep.resample.converted_length)
    const int64_t q = frames / in_rate, r = frames % in_rate;
    const int64_t num = r * out_rate;
    int64_t y = q * out_rate + num / in_rate;
    const int64_t rem = num % in_rate;
    if (2 * rem > in_rate || (2 * rem == in_rate && (y & 1))) ++y;
    return y;
}

}  // namespace cpu
}  // namespace fastsep
