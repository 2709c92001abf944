#include "fastsep/cpu/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>

#include "fastsep/error.hpp"
#include "fastsep/sizes.hpp"

namespace fastsep {
namespace cpu {

namespace {
constexpr int kFrameBlock = 16;  // frames transformed together: SIMD across rows, and a work item of the threads

int dsp_threads(int asked) {
    if (asked > 0) return asked;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}

Config checked(const Config& c) {
    require_range("n_stems", c.n_stems, 1, kMaxStems);
    require_range("frame_length", c.frame_length, 2, kMaxFrameLength);
    FASTSEP_REQUIRE(c.frame_length % 2 == 0, "frame_length must be even");
    FASTSEP_REQUIRE(c.frame_step > 0 && c.frame_length % c.frame_step == 0 && c.frame_step < c.frame_length,
                    "frame_length must be a multiple of frame_step, at least twice it");
    require_range("F", c.F, 1, c.frame_length / 2 + 1);
    require_range("T", c.T, 1, 1 << 20);
    require_range("segment_hop", c.segment_hop, 0, c.T);
    require_range("batch", c.batch, 1, 1 << 16);
    require_range("threads", c.threads, 0, 1 << 12);
    FASTSEP_REQUIRE(std::isfinite(c.separation_exponent) && c.separation_exponent > 0,
                    "separation_exponent must be a positive number");
    FASTSEP_REQUIRE(c.mask_extension == dsp::MaskExtension::Zeros || c.mask_extension == dsp::MaskExtension::Average,
                    "mask_extension must be zeros or average");
    return c;
}

// Bytes of the per-chunk buffers, checked before anything is allocated.
void check_sizes(const Config& c, int64_t span) {
    const int64_t K = c.frame_length / 2 + 1;
    buffer_bytes("spectrum", 8, {2, span, K});
    buffer_bytes("network input", 4, {c.batch, 2, c.T, c.F});
    buffer_bytes("network output", 4, {c.batch, c.n_stems, 2, c.T, c.F});
    buffer_bytes("blended estimates", 4, {c.n_stems, 2, span, c.F});
}

// |z| as numpy's abs of complex64 (hypotf: the double sum of squares, rounded once)
inline float magnitude(cfloat z) {
    const double re = z.real(), im = z.imag();
    return static_cast<float>(std::sqrt(re * re + im * im));
}
}  // namespace

Pipeline::Pipeline(const Config& config, std::shared_ptr<Network> network)
    : cfg_(checked(config)),
      sched_(cfg_.T, cfg_.frame_length, cfg_.frame_step, cfg_.segment_hop, cfg_.batch),
      network_(std::move(network)),
      pool_(dsp_threads(cfg_.threads)) {
    FASTSEP_REQUIRE(network_ != nullptr, "the CPU pipeline needs a network");
    N_ = cfg_.frame_length;
    H_ = cfg_.frame_step;
    K_ = N_ / 2 + 1;
    S_ = cfg_.n_stems;
    const int T = cfg_.T, F = cfg_.F, B = cfg_.batch;
    const int64_t span = int64_t(B - 1) * sched_.hop() + T;
    check_sizes(cfg_, span);
    analysis_window_.resize(N_);
    synthesis_window_.resize(N_);
    for (int n = 0; n < N_; ++n) {
        analysis_window_[n] = dsp::analysis_window(n, N_);
        synthesis_window_[n] = dsp::synthesis_window(n, N_);
    }
    for (auto& slot : slots_) {
        slot.spectrum.resize(2 * span * K_);
        slot.net_in.resize(size_t(B) * 2 * T * F);
        slot.net_out.resize(size_t(B) * S_ * 2 * T * F);
    }
    tails_.assign(size_t(S_) * 2 * (N_ - H_), 0.0f);
    if (sched_.overlapped()) {
        fade_.resize(T);
        for (int j = 0; j < T; ++j) fade_[j] = dsp::fade_weight(j, T, sched_.hop());
        blend_tails_.assign(size_t(S_) * 2 * T * F, 0.0f);
        blended_.resize(size_t(S_) * 2 * span * F);
        weights_.resize(size_t(B) * T);
    }
    ready_.resize(S_);
    if (cfg_.overlap_stages) stage_ = std::make_unique<StageThread>();
}

void Pipeline::reset() {
    input_.clear();
    input_.shrink_to_fit();
    input_origin_ = received_ = next_segment_ = emitted_ = ready_begin_ = write_at_ = 0;
    total_segments_ = -1;
    finished_ = failed_ = false;
    std::fill(tails_.begin(), tails_.end(), 0.0f);
    blend_tail_frames_ = 0;
    for (auto& r : ready_) {
        r.clear();
        r.shrink_to_fit();
    }
}

void Pipeline::check_usable() const {
    if (failed_) throw StateError("the separator failed on this song: reset() before the next one");
}

namespace {
void require_finite(const float* x, int64_t values) {
    bool ok = true;
    for (int64_t i = 0; i < values; ++i) ok &= std::isfinite(x[i]);
    if (!ok) throw InputError("the audio contains NaN or Inf samples");
}
}  // namespace

void Pipeline::push(const float* samples, int64_t n) {
    check_usable();
    if (finished_) throw StateError("push after finish: reset() starts the next song");
    require_range("samples", n, 0, kMaxSamples - received_);
    if (n == 0) return;
    FASTSEP_REQUIRE(samples != nullptr, "samples is NULL");
    require_finite(samples, 2 * n);
    input_.insert(input_.end(), samples, samples + 2 * n);
    received_ += n;
    process(false);
}

void Pipeline::finish() {
    check_usable();
    if (finished_) return;
    process(true);
    finished_ = true;
    input_.clear();
    input_.shrink_to_fit();
}

int64_t Pipeline::available() const noexcept {
    return static_cast<int64_t>(ready_[0].size() / 2) - ready_begin_;
}

void Pipeline::pull(float* const* stems, int64_t n) {
    check_usable();
    if (n < 0 || n > available())
        throw StateError("pull of " + std::to_string(n) + " samples: " + std::to_string(available()) +
                         " are available");
    if (n == 0) return;
    FASTSEP_REQUIRE(stems != nullptr, "stems is NULL");
    for (int s = 0; s < S_; ++s) FASTSEP_REQUIRE(stems[s] != nullptr, "stems[" + std::to_string(s) + "] is NULL");
    for (int s = 0; s < S_; ++s)
        std::memcpy(stems[s], ready_[s].data() + 2 * ready_begin_, sizeof(float) * 2 * size_t(n));
    ready_begin_ += n;
    if (2 * ready_begin_ * 2 > static_cast<int64_t>(ready_[0].size())) {  // more than half pulled: drop it
        for (auto& r : ready_) r.erase(r.begin(), r.begin() + 2 * ready_begin_);
        ready_begin_ = 0;
    }
}

void Pipeline::separate(const float* x, int64_t samples, float* out) {
    reset();
    require_samples("samples", samples);
    if (samples == 0) return;
    FASTSEP_REQUIRE(x != nullptr && out != nullptr, "null input or output");
    require_finite(x, 2 * samples);
    struct Direct {  // the caller's buffers are ours for this call only, also when it fails
        Pipeline& p;
        ~Direct() { p.direct_input_ = nullptr, p.direct_output_ = nullptr; }
    } direct{*this};
    direct_input_ = x;
    direct_output_ = out;
    received_ = samples;
    process(true);
    finished_ = true;
}

void Pipeline::process(bool final) {
    std::vector<Chunk> chunks;
    int64_t seg = next_segment_;
    if (final) {
        if (received_ == 0) return;
        const int64_t total = total_segments_ = sched_.segments_for(received_);
        while (seg < total) {
            chunks.push_back(sched_.chunk(seg, total));
            seg += chunks.back().b;
        }
    } else {
        while (received_ >= sched_.samples_for_chunk(seg)) {
            chunks.push_back(sched_.chunk(seg, -1));
            seg += chunks.back().b;
        }
    }
    if (chunks.empty()) return;
    try {
        run_chunks(chunks);
    } catch (...) {
        failed_ = true;
        throw;
    }
    next_segment_ = seg;
    if (!direct_input_) {  // drop the samples no later chunk reads
        const int64_t keep = std::min(sched_.first_needed(seg), received_);
        if (keep > input_origin_) {
            input_.erase(input_.begin(), input_.begin() + 2 * (keep - input_origin_));
            input_origin_ = keep;
        }
    }
}

void Pipeline::run_chunks(const std::vector<Chunk>& chunks) {
    const InputView in = direct_input_ ? InputView{direct_input_, 0, received_}
                                       : InputView{input_.data(), input_origin_, received_ - input_origin_};
    const int64_t length = finished_ || direct_input_ ? received_ : -1;
    auto slot_of = [&](size_t i) -> Slot& {
        Slot& slot = slots_[i % 3];
        slot.chunk = chunks[i];
        return slot;
    };
    auto length_for = [&](const Chunk& c) { return c.last ? received_ : length; };
    auto network = [&](Slot& slot) {
        network_->run(slot.net_in.data(), slot.net_out.data(), cfg_.batch);
        if (progress_) progress_(slot.chunk.seg0 + slot.chunk.b, std::max<int64_t>(total_segments_, 0));
    };
    if (!stage_ || chunks.size() == 1) {
        for (size_t i = 0; i < chunks.size(); ++i) {
            Slot& slot = slot_of(i);
            analyze(slot, in);
            network(slot);
            synthesize(slot, length_for(slot.chunk));
        }
        return;
    }
    // Pipelined: the stage thread runs analysis k+1 and synthesis k-1 while this thread runs network k. Slot k%3:
    // analysis k+1 reuses the slot of synthesis k-2, which the stage thread finished before analysis k.
    std::vector<std::future<void>> pending;
    auto wait_all = [&] {
        for (auto& f : pending)
            if (f.valid()) f.wait();
    };
    try {
        analyze(slot_of(0), in);
        for (size_t i = 0; i < chunks.size(); ++i) {
            Slot& slot = slots_[i % 3];
            std::future<void> next;
            if (i + 1 < chunks.size()) {
                Slot& following = slot_of(i + 1);
                next = stage_->submit([this, &following, in] { analyze(following, in); });
            }
            network(slot);
            const int64_t len = length_for(slot.chunk);
            pending.push_back(stage_->submit([this, &slot, len] { synthesize(slot, len); }));
            if (next.valid()) {
                pending.push_back(std::move(next));
                pending.back().get();  // rethrows analysis errors
            }
        }
        for (auto& f : pending)
            if (f.valid()) f.get();
    } catch (...) {
        wait_all();  // nothing may still use the slots or the caller's buffers
        throw;
    }
}

void Pipeline::analyze(Slot& slot, const InputView& in) {
    const Chunk& c = slot.chunk;
    const int T = cfg_.T, F = cfg_.F, hop = sched_.hop();
    const int64_t span = c.span;
    const int64_t blocks = (span + kFrameBlock - 1) / kFrameBlock;
    cfloat* spectrum = slot.spectrum.data();
    // 1. frames of both channels, windowed, transformed kFrameBlock at a time
    pool_.parallel_for(2 * blocks, [&](int64_t item) {
        thread_local std::vector<float> frames;
        frames.resize(size_t(kFrameBlock) * N_);
        const int ch = static_cast<int>(item / blocks);
        const int64_t b0 = (item % blocks) * kFrameBlock;
        const int64_t nb = std::min<int64_t>(kFrameBlock, span - b0);
        for (int64_t k = 0; k < nb; ++k) {
            float* row = frames.data() + k * N_;
            const int64_t start = (c.first + b0 + k) * H_ - N_ - in.origin;  // song sample of row[0], in x
            const int64_t lo = std::clamp<int64_t>(-start, 0, N_), hi = std::clamp<int64_t>(in.len - start, lo, N_);
            std::fill(row, row + lo, 0.0f);
            const float* x = in.x + 2 * (start + lo) + ch;
            for (int64_t n = lo; n < hi; ++n) row[n] = x[2 * (n - lo)] * analysis_window_[n];
            std::fill(row + hi, row + N_, 0.0f);
        }
        rfft_rows(N_, nb, frames.data(), N_, spectrum + (ch * span + b0) * K_, K_);
    });
    // magnitudes of the chunk's segments into the network input (a short chunk is padded with silence)
    std::atomic<bool> overflow{false};
    pool_.parallel_for(int64_t(cfg_.batch) * 2, [&](int64_t item) {
        const int64_t seg = item / 2;
        const int ch = static_cast<int>(item % 2);
        float* dst = slot.net_in.data() + item * T * F;
        if (seg >= c.b) {
            std::fill(dst, dst + int64_t(T) * F, 0.0f);
            return;
        }
        bool finite = true;
        for (int t = 0; t < T; ++t) {
            const cfloat* row = spectrum + (ch * span + seg * hop + t) * K_;
            float* out = dst + int64_t(t) * F;
            for (int f = 0; f < F; ++f) {
                out[f] = magnitude(row[f]);
                finite &= out[f] <= FLT_MAX;
            }
        }
        if (!finite) overflow = true;
    });
    if (overflow)
        throw InputError("the audio's spectrum overflows float32: samples far beyond full scale (|x| > 1e30)");
}

void Pipeline::blend(const Slot& slot) {
    const Chunk& c = slot.chunk;
    const int T = cfg_.T, F = cfg_.F, hop = sched_.hop();
    const int64_t span = c.span;
    const int64_t plane = int64_t(T) * F;
    // weights of every frame of the chunk's segments; a streamed song's later segments are known to exist
    dsp::BlendArgs<float> w{};
    w.fade = fade_.data();
    w.n_segments = total_segments_ >= 0 ? total_segments_ : std::numeric_limits<int64_t>::max();
    w.T = T;
    w.hop = hop;
    for (int k = 0; k < c.b; ++k)
        for (int j = 0; j < T; ++j) weights_[size_t(k) * T + j] = dsp::blend_weight(w, c.seg0 + k, j);
    const float* est = slot.net_out.data();
    pool_.parallel_for(int64_t(S_) * 2, [&](int64_t sc) {
        const int s = static_cast<int>(sc / 2), ch = static_cast<int>(sc % 2);
        float* tail = blend_tails_.data() + sc * plane;
        for (int64_t fl = 0; fl < span; ++fl) {
            float* out = blended_.data() + (sc * span + fl) * F;
            if (fl < blend_tail_frames_)
                std::memcpy(out, tail + fl * F, sizeof(float) * F);
            else
                std::fill(out, out + F, 0.0f);
            // segments k of the chunk holding frame fl, in order (as dsp_math.cuh's blend_element)
            const int64_t k_lo = fl >= T ? (fl - T) / hop + 1 : 0;
            const int64_t k_hi = std::min<int64_t>(fl / hop, c.b - 1);
            for (int64_t k = k_lo; k <= k_hi; ++k) {
                const int64_t j = fl - k * hop;
                const float wj = weights_[size_t(k) * T + j];
                const float* y = est + ((k * S_ + s) * 2 + ch) * plane + j * F;
                for (int f = 0; f < F; ++f) out[f] += y[f] * wj;
            }
        }
        // frames later segments still add to
        for (int64_t fl = c.count; fl < span; ++fl)
            std::memcpy(tail + (fl - c.count) * F, blended_.data() + (sc * span + fl) * F, sizeof(float) * F);
    });
    blend_tail_frames_ = span - c.count;
}

void Pipeline::synthesize(Slot& slot, int64_t length) {
    const Chunk& c = slot.chunk;
    if (sched_.overlapped()) blend(slot);
    // output samples final after this chunk: [t0, t0 + count*H) within the song
    const int64_t t0 = sched_.t0(c);
    int64_t hi = t0 + c.count * H_;
    if (length >= 0) hi = std::min(hi, length);
    const int64_t n = std::max<int64_t>(hi - std::max<int64_t>(t0, 0), 0);
    if (!direct_output_) {
        write_at_ = static_cast<int64_t>(ready_[0].size() / 2);
        for (auto& r : ready_) r.resize(r.size() + 2 * size_t(n));
    }
    std::atomic<bool> overflow{false};
    pool_.parallel_for(int64_t(S_) * 2, [&](int64_t sc) {
        try {
            synthesize_row(slot, static_cast<int>(sc / 2), static_cast<int>(sc % 2), length);
        } catch (const InputError&) {
            overflow = true;
        }
    });
    if (overflow)
        throw InputError("the network's estimates are not finite (NaN or Inf): the audio is far beyond full "
                         "scale, or the model's weights are broken");
    emitted_ += n;
}

void Pipeline::synthesize_row(const Slot& slot, int s, int ch, int64_t length) {
    const Chunk& c = slot.chunk;
    const int T = cfg_.T, F = cfg_.F;
    const int64_t span = c.span, count = c.count;
    const float p = cfg_.separation_exponent;
    const float eps_over_n = dsp::epsilon_over_n(S_);
    const bool average = cfg_.mask_extension == dsp::MaskExtension::Average;
    const int64_t tail_len = N_ - H_;
    thread_local std::vector<float> acc, total, mask, frames;
    thread_local std::vector<cfloat> masked;
    thread_local std::vector<const float*> rows;
    acc.assign(size_t(count) * H_ + tail_len, 0.0f);
    total.resize(F);
    mask.resize(F);
    frames.resize(size_t(count) * N_);
    masked.resize(size_t(kFrameBlock) * K_);
    rows.resize(S_);
    auto estimate_row = [&](int j, int64_t fl) -> const float* {
        if (sched_.overlapped()) return blended_.data() + ((int64_t(j) * 2 + ch) * span + fl) * F;
        const int64_t seg = fl / T, t = fl % T;
        return slot.net_out.data() + (((seg * S_ + j) * 2 + ch) * T + t) * F;
    };
    const cfloat* spectrum = slot.spectrum.data() + ch * span * K_;
    const float inv_n = 1.0f / static_cast<float>(N_);
    // Output blocks [b_lo, b_hi) of H samples, in dsp.inverse_frames' order (each sums the newest frame first), so
    // that the result is the NumPy reference's to the last bit where the FFTs agree; block b needs frames b-3..b,
    // still in cache right after their inverse FFT.
    const int hops = N_ / H_;
    auto overlap_add = [&](int64_t b_lo, int64_t b_hi) {
        for (int64_t b = b_lo; b < b_hi; ++b) {
            float* a = acc.data() + b * H_;
            for (int j = 0; j < hops; ++j) {
                const int64_t fl = b - j;
                if (fl < 0 || fl >= count) continue;
                const float* r = frames.data() + fl * N_ + int64_t(j) * H_;
                const float* w = synthesis_window_.data() + int64_t(j) * H_;
                for (int n = 0; n < H_; ++n) a[n] += r[n] * w[n];
            }
        }
    };
    bool finite = true;
    for (int64_t b0 = 0; b0 < count; b0 += kFrameBlock) {
        const int64_t nb = std::min<int64_t>(kFrameBlock, count - b0);
        // 3. + 4. ratio masks (docs/spec.md §6), extended to K bins, times the mixture spectrum
        for (int64_t k = 0; k < nb; ++k) {
            const int64_t fl = b0 + k;
            for (int j = 0; j < S_; ++j) rows[j] = estimate_row(j, fl);
            // loops free of branches and reductions, so that they vectorise
            if (p == 2.0f) {
                for (int f = 0; f < F; ++f) total[f] = rows[0][f] * rows[0][f];
                for (int j = 1; j < S_; ++j)
                    for (int f = 0; f < F; ++f) total[f] += rows[j][f] * rows[j][f];
                const float* y = rows[s];
                for (int f = 0; f < F; ++f) mask[f] = (y[f] * y[f] + eps_over_n) / (total[f] + dsp::kEpsilon);
            } else {
                for (int f = 0; f < F; ++f) total[f] = dsp::stem_power(rows[0][f], p);
                for (int j = 1; j < S_; ++j)
                    for (int f = 0; f < F; ++f) total[f] += dsp::stem_power(rows[j][f], p);
                const float* y = rows[s];
                for (int f = 0; f < F; ++f)
                    mask[f] = dsp::ratio_mask(dsp::stem_power(y[f], p), total[f], eps_over_n);
            }
            int bad = 0;
            for (int f = 0; f < F; ++f) bad |= !(total[f] <= FLT_MAX);
            finite &= !bad;
            const float* __restrict xr = reinterpret_cast<const float*>(spectrum + fl * K_);  // (re, im) pairs
            float* __restrict out = reinterpret_cast<float*>(masked.data() + k * K_);
            for (int f = 0; f < F; ++f) {
                out[2 * f] = xr[2 * f] * mask[f];
                out[2 * f + 1] = xr[2 * f + 1] * mask[f];
            }
            float mean = 0.0f;
            if (average) {  // the mean of the F masks, summed in 8 lanes of double
                double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                int f = 0;
                for (; f + 8 <= F; f += 8)
                    for (int l = 0; l < 8; ++l) lanes[l] += mask[f + l];
                for (; f < F; ++f) lanes[0] += mask[f];
                double sum = 0.0;
                for (double v : lanes) sum += v;
                mean = static_cast<float>(sum / F);
            }
            for (int f = F; f < K_; ++f) {
                out[2 * f] = xr[2 * f] * mean;
                out[2 * f + 1] = xr[2 * f + 1] * mean;
            }
        }
        // 4. inverse FFT, synthesis window (with 2/3), overlap-add of the output blocks these frames complete
        irfft_rows(N_, nb, masked.data(), K_, frames.data() + b0 * N_, N_, inv_n);
        overlap_add(b0, b0 + nb);
    }
    overlap_add(count, count + N_ / H_ - 1);  // the blocks only earlier frames reach: the tail
    if (!finite) throw InputError("non-finite estimates");
    float* tail = tails_.data() + (int64_t(s) * 2 + ch) * tail_len;
    for (int64_t j = 0; j < tail_len; ++j) acc[j] += tail[j];
    std::memcpy(tail, acc.data() + count * H_, sizeof(float) * tail_len);
    emit(s, ch, acc.data(), sched_.t0(c), count * H_, length);
}

void Pipeline::emit(int s, int ch, const float* acc, int64_t t0, int64_t n, int64_t length) {
    // 5. crop to [0, L): local sample j is song sample t0 + j
    const int64_t lo = std::max<int64_t>(t0, 0);
    int64_t hi = t0 + n;
    if (length >= 0) hi = std::min(hi, length);
    if (hi <= lo) return;
    float* dst;
    if (direct_output_) {
        dst = direct_output_ + (int64_t(s) * received_ + lo) * 2 + ch;
    } else {  // synthesize() appended room for the chunk's samples: song sample emitted_ is at write_at_
        dst = ready_[s].data() + 2 * (write_at_ + lo - emitted_) + ch;
    }
    const float* a = acc + (lo - t0);
    for (int64_t i = 0; i < hi - lo; ++i) dst[2 * i] = a[i];
}

}  // namespace cpu
}  // namespace fastsep
