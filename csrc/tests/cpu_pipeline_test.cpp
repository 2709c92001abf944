// The CPU pipeline from C++ alone, no Python (CI builds and runs it under AddressSanitizer and
// UndefinedBehaviorSanitizer): analytic reconstruction, streaming against one call, staged against serial, the
// errors and recovery, two pipelines on two threads. Exit status 0 when every check passes.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "fastsep/cpu/pipeline.hpp"
#include "fastsep/cpu/resampler.hpp"
#include "fastsep/error.hpp"

using fastsep::cpu::Config;
using fastsep::cpu::Network;
using fastsep::cpu::Pipeline;
using fastsep::cpu::Resampler;

namespace {
constexpr double kPi = 3.14159265358979323846;
int failures = 0, passes = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    ++(ok ? passes : failures);
}

// estimates_s = gain_s * magnitude; equal gains give masks of exactly 1/S
class GainNetwork : public Network {
public:
    GainNetwork(std::vector<float> gains, int T, int F) : gains_(std::move(gains)), T_(T), F_(F) {}
    void run(const float* m, float* e, int batch) override {
        const int S = static_cast<int>(gains_.size());
        const size_t plane = size_t(2) * T_ * F_;
        for (int b = 0; b < batch; ++b)
            for (int s = 0; s < S; ++s)
                for (size_t i = 0; i < plane; ++i)
                    e[(size_t(b) * S + s) * plane + i] = gains_[s] * m[size_t(b) * plane + i] * (1.0f + 0.01f * s);
    }

private:
    std::vector<float> gains_;
    int T_, F_;
};

std::vector<float> music(int64_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> noise(0.0f, 0.05f);
    std::vector<float> x(2 * n);
    for (int64_t t = 0; t < n; ++t)
        for (int c = 0; c < 2; ++c)
            x[2 * t + c] = 0.3f * std::sin(0.01f * t * (c + 1)) + noise(g);
    return x;
}

double snr_db(const std::vector<float>& ref, const std::vector<float>& est) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += double(ref[i]) * ref[i];
        den += (double(ref[i]) - est[i]) * (double(ref[i]) - est[i]);
    }
    return den == 0 ? 400 : 10 * std::log10(num / den);
}

Config small(int stems, int hop = 0, bool staged = true, int threads = 2) {
    Config c;
    c.n_stems = stems;
    c.F = 128;
    c.T = 64;
    c.mask_extension = fastsep::dsp::MaskExtension::Average;
    c.segment_hop = hop;
    c.threads = threads;
    c.overlap_stages = staged;
    return c;
}

std::vector<float> one_shot(Pipeline& p, const std::vector<float>& x) {
    const int64_t n = static_cast<int64_t>(x.size() / 2);
    std::vector<float> out(size_t(p.config().n_stems) * 2 * n);
    p.separate(x.data(), n, out.data());
    return out;
}

std::vector<float> streamed(Pipeline& p, const std::vector<float>& x, unsigned seed) {
    const int64_t n = static_cast<int64_t>(x.size() / 2);
    const int S = p.config().n_stems;
    std::vector<float> out(size_t(S) * 2 * n);
    std::mt19937 g(seed);
    std::uniform_int_distribution<int64_t> block(1, 90000);
    int64_t in = 0, got = 0;
    p.reset();
    auto drain = [&] {
        const int64_t a = p.available();
        std::vector<float*> dst(S);
        for (int s = 0; s < S; ++s) dst[s] = out.data() + (size_t(s) * n + got) * 2;
        p.pull(dst.data(), a);
        got += a;
    };
    while (in < n) {
        const int64_t k = std::min(block(g), n - in);
        p.push(x.data() + 2 * in, k);
        in += k;
        drain();
    }
    p.finish();
    drain();
    return got == n ? out : std::vector<float>();
}
// the whole input in one call, or in random blocks (1 frame among them), then finish
std::vector<float> resample(Resampler& r, const std::vector<float>& x, unsigned seed) {
    const int C = r.channels();
    const int64_t n = static_cast<int64_t>(x.size()) / C;
    std::vector<float> out;
    r.reset();
    if (seed == 0) {
        r.process(x.data(), n, out);
    } else {
        std::mt19937 g(seed);
        std::uniform_int_distribution<int64_t> block(0, 3000);
        for (int64_t in = 0; in < n;) {
            const int64_t k = std::min(in < 200 ? 1 : block(g), n - in);
            r.process(x.data() + in * C, k, out);
            in += k;
        }
    }
    r.finish(out);
    return out;
}

double sine_snr(const std::vector<float>& y, int C, double f, int rate, int64_t margin) {
    const int64_t m = static_cast<int64_t>(y.size()) / C;
    double num = 0, den = 0;
    for (int64_t k = margin; k < m - margin; ++k) {
        const double want = 0.5 * std::sin(2 * kPi * f * double(k) / rate + 0.3);
        num += want * want;
        den += (want - y[k * C]) * (want - y[k * C]);
    }
    return 10 * std::log10(num / den);
}
}  // namespace

int main() {
    const int64_t n = 300001;
    const auto x = music(n, 1);
    // 1. equal estimates: masks of 1/S in every bin (full band), the stems sum to the input
    {
        // GainNetwork scales stem s by (1 + 0.01 s): undo it with gains 1/(1 + 0.01 s)
        Pipeline q(small(3), std::make_shared<GainNetwork>(std::vector<float>{1.0f, 1 / 1.01f, 1 / 1.02f}, 64, 128));
        const auto out = one_shot(q, x);
        std::vector<float> sum(2 * n, 0.0f);
        for (int s = 0; s < 3; ++s)
            for (int64_t i = 0; i < 2 * n; ++i) sum[i] += out[size_t(s) * 2 * n + i];
        const double snr = snr_db(x, sum);
        check(snr > 100, "equal masks: the stems sum to the input (" + std::to_string(snr) + " dB)");
    }
    // 2. streamed in random blocks == one call, plain and overlapped segments, batch 1 and 3
    for (int hop : {0, 48, 20})
        for (int batch : {1, 3}) {
            Config c = small(2, hop);
            c.batch = batch;
            Pipeline p(c, std::make_shared<GainNetwork>(std::vector<float>{0.4f, 0.9f}, 64, 128));
            const auto a = one_shot(p, x);
            const auto b = streamed(p, x, 7 + hop + batch);
            check(a == b, "streamed == one shot, hop " + std::to_string(hop) + ", batch " + std::to_string(batch));
        }
    // 3. staged (stage thread beside the network) == serial
    {
        Pipeline a(small(4, 0, true, 3), std::make_shared<GainNetwork>(std::vector<float>{1, 2, 3, 4}, 64, 128));
        Pipeline b(small(4, 0, false, 1), std::make_shared<GainNetwork>(std::vector<float>{1, 2, 3, 4}, 64, 128));
        check(one_shot(a, x) == one_shot(b, x), "staged == serial");
    }
    // 4. errors, then reset
    {
        Pipeline p(small(2), std::make_shared<GainNetwork>(std::vector<float>{0.4f, 0.9f}, 64, 128));
        auto bad = x;
        bad[11] = NAN;
        bool caught = false;
        try {
            p.push(bad.data(), n);
        } catch (const fastsep::InputError&) {
            caught = true;
        }
        check(caught && p.received() == 0, "NaN samples: InputError, nothing kept");
        p.push(x.data(), n);
        caught = false;
        try {
            std::vector<float> tmp(2 * (p.available() + 1));
            float* dst[2] = {tmp.data(), tmp.data()};
            p.pull(dst, p.available() + 1);
        } catch (const fastsep::StateError&) {
            caught = true;
        }
        check(caught, "pull past what is available: StateError");
        p.finish();
        caught = false;
        try {
            p.push(x.data(), 10);
        } catch (const fastsep::StateError&) {
            caught = true;
        }
        check(caught, "push after finish: StateError");
        auto huge = x;
        huge[2000] = huge[2001] = 3e38f;
        caught = false;
        std::vector<float> out(size_t(2) * 2 * n);
        try {
            p.separate(huge.data(), n, out.data());
        } catch (const fastsep::InputError&) {
            caught = true;
        }
        check(caught, "samples far beyond full scale: InputError");
        p.reset();
        Pipeline fresh(small(2), std::make_shared<GainNetwork>(std::vector<float>{0.4f, 0.9f}, 64, 128));
        check(one_shot(p, x) == one_shot(fresh, x), "after reset: the same stems as a fresh pipeline");
        caught = false;
        try {
            Config c = small(2);
            c.F = 100000;
            Pipeline bad_config(c, std::make_shared<GainNetwork>(std::vector<float>{1, 1}, 64, 128));
        } catch (const fastsep::InvalidArgument&) {
            caught = true;
        }
        check(caught, "F beyond N/2 + 1: InvalidArgument");
    }
    // 5. two pipelines on two threads, one network each, as two separators in two threads
    {
        auto make = [] {
            return std::make_unique<Pipeline>(small(2),
                                              std::make_shared<GainNetwork>(std::vector<float>{0.4f, 0.9f}, 64, 128));
        };
        auto ref = make();
        const auto want = one_shot(*ref, x);
        std::vector<float> got[2];
        std::thread threads[2];
        for (int i = 0; i < 2; ++i)
            threads[i] = std::thread([&, i] {
                auto p = make();
                for (int k = 0; k < 3; ++k) got[i] = one_shot(*p, x);
            });
        for (auto& t : threads) t.join();
        check(got[0] == want && got[1] == want, "two pipelines on two threads");
    }
    // 6. the resampler: a sine in the passband keeps amplitude and phase (delay compensated), one above the lower
    // Nyquist is removed, blocks of any size give the same bits, exact lengths, round trip, errors
    {
        auto tone = [](int64_t n, int C, double f, int rate) {
            std::vector<float> v(size_t(n) * C);
            for (int64_t t = 0; t < n; ++t)
                for (int c = 0; c < C; ++c) v[t * C + c] = float(0.5 * std::sin(2 * kPi * f * double(t) / rate + 0.3));
            return v;
        };
        for (auto [a, b] : {std::pair{48000, 44100}, {44100, 48000}, {8000, 44100}, {44100, 8000}, {44100, 44101}}) {
            Resampler r(a, b, 2);
            const double f = 0.9 * std::min(a, b) / 2;
            const auto y = resample(r, tone(a / 2, 2, f, a), 0);
            const int64_t margin = r.lookahead() * b / a + 2;
            const double snr = sine_snr(y, 2, f, b, margin);
            const std::string ab = std::to_string(a) + " -> " + std::to_string(b);
            check(snr > 120, "resampler " + ab + ": sine at 0.9 of the lower Nyquist kept (" + std::to_string(snr) +
                                 " dB)");
            check(y.size() == size_t(2 * Resampler::output_length(a / 2, a, b)), "resampler " + ab + ": length");
            const auto x = music(20001, 3);
            check(resample(r, x, 0) == resample(r, x, 11), "resampler " + ab + ": random blocks == one call");
        }
        {
            Resampler r(48000, 44100, 1);
            const auto y = resample(r, tone(48000, 1, 1.05 * 22050, 48000), 0);
            double e = 0;
            for (size_t k = 500; k + 500 < y.size(); ++k) e += double(y[k]) * y[k];
            const double db = 10 * std::log10(e / double(y.size() - 1000) / 0.125);
            check(db < -100, "resampler: a sine above the lower Nyquist is removed (" + std::to_string(db) + " dB)");
        }
        {
            Resampler down(48000, 44100, 2), up(44100, 48000, 2);
            const auto x = tone(96000, 2, 17000, 48000);
            const auto back = resample(up, resample(down, x, 0), 0);
            double num = 0, den = 0;
            for (size_t i = 2000; i + 2000 < x.size(); ++i) {
                num += double(x[i]) * x[i];
                den += (double(x[i]) - back[i]) * (double(x[i]) - back[i]);
            }
            check(back.size() == x.size() && 10 * std::log10(num / den) > 120, "resampler: 48k -> 44.1k -> 48k");
        }
        bool ok = true;
        for (int64_t n : {0, 1, 2, 3, 1001})
            for (auto [a, b] : {std::pair{48000, 44100}, {44100, 22050}, {22050, 44100}, {44100, 44100}}) {
                Resampler r(a, b, 3);
                ok = ok && resample(r, std::vector<float>(size_t(n) * 3, 0.25f), 0).size() ==
                               size_t(3 * Resampler::output_length(n, a, b));
            }
        check(ok && Resampler::output_length(1, 44100, 22050) == 0 && Resampler::output_length(3, 44100, 22050) == 2,
              "resampler: lengths round(n * out / in), ties to even");
        {
            Resampler same(44100, 44100, 2);
            const auto x = music(1000, 4);
            check(resample(same, x, 5) == x && same.lookahead() == 0, "resampler: equal rates copy");
        }
        int refused = 0;
        for (auto [a, b, c] : {std::tuple{999, 44100, 2}, {44100, 768001, 2}, {44100, 48000, 0}, {44100, 48000, 65}}) {
            try {
                Resampler r(a, b, c);
            } catch (const fastsep::InvalidArgument&) {
                ++refused;
            }
        }
        Resampler r(48000, 44100, 2);
        std::vector<float> out;
        r.finish(out);
        try {
            r.process(out.data(), 0, out);
        } catch (const fastsep::StateError&) {
            ++refused;
        }
        check(refused == 5, "resampler: bad rates and channels InvalidArgument, process after finish StateError");
    }
    std::printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
