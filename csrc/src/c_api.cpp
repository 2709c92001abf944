// fastsep's C API (csrc/include/fastsep.h, issue 18) over the CPU pipeline (docs/architecture.md §4.7): the network
// through OpenVINO's C++ runtime, the DSP in cpu::Pipeline, other sample rates through cpu::Resampler.
//
// Every entry point catches everything: no exception crosses the ABI (a C caller cannot catch one), and each failure
// is a status plus one line for fastsep_last_error.
#include "fastsep.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "fastsep/cpu/openvino_network.hpp"
#include "fastsep/cpu/pipeline.hpp"
#include "fastsep/error.hpp"
#include "fastsep/sizes.hpp"
#include "model_config.hpp"
#if defined(FASTSEP_HAVE_RESAMPLER)
#include "fastsep/cpu/resampler.hpp"
#endif

#ifndef FASTSEP_VERSION_STRING
#define FASTSEP_VERSION_STRING "0.0.0"
#endif

namespace cpu = fastsep::cpu;
using fastsep::capi::ModelConfig;

namespace {

constexpr int kDefaultRate = 44100;  // fastsep_options.sample_rate 0 (the contract)

// Why a call failed: the status and its line.
struct Failure {
    fastsep_status status;
    std::string message;
};

// Per-stem output at the caller's rate (the resampled path): frames not yet pulled.
struct Queue {
    std::vector<float> data;
    size_t begin = 0;  // floats already pulled
};

}  // namespace

struct fastsep_separator {
    std::string last_error;
    ModelConfig config;
    int channels = 2;     // of the caller's frames
    int rate = 0;         // the caller's
    bool resampled = false;
    std::shared_ptr<cpu::OpenVinoNetwork> network;
    std::unique_ptr<cpu::Pipeline> pipeline;
#if defined(FASTSEP_HAVE_RESAMPLER)
    std::unique_ptr<cpu::Resampler> in_rs;               // caller's rate -> the model's, `channels` channels
    std::vector<std::unique_ptr<cpu::Resampler>> out_rs;  // one per stem: the model's rate -> caller's
#endif
    std::vector<Queue> out;  // resampled path: per stem, (frames, channels) at the caller's rate
    std::vector<float> scratch, scratch2;
    std::vector<float*> stem_ptrs;
    int64_t pushed = 0;    // frames pushed (caller's rate)
    int64_t released = 0;  // frames pulled (caller's rate)
    bool finished = false;
    bool failed = false;  // a failure inside the pipeline or resamplers: only reset is accepted
    mutable int64_t exact_latency = -1;  // resampled path: computed on first fastsep_latency
};

namespace {

thread_local std::string t_last_error;  // fastsep_last_error(NULL)

Failure failure(fastsep_status status, std::string message) { return {status, std::move(message)}; }

// The one translation of exceptions to statuses (the mapping of issue 18).
template <class Fn>
fastsep_status guarded(std::string* message_out, Fn&& fn) noexcept {
    Failure f{FASTSEP_OK, ""};
    try {
        f = fn();
    } catch (const Failure& e) {  // a status of its own (FASTSEP_ERROR_DEVICE)
        f = e;
    } catch (const fastsep::InvalidArgument& e) {
        f = failure(FASTSEP_ERROR_ARGUMENT, e.what());
    } catch (const fastsep::ModelError& e) {
        f = failure(FASTSEP_ERROR_MODEL, e.what());
    } catch (const fastsep::InputError& e) {
        f = failure(FASTSEP_ERROR_INPUT, e.what());
    } catch (const fastsep::StateError& e) {
        f = failure(FASTSEP_ERROR_STATE, e.what());
    } catch (const std::bad_alloc&) {
        f = failure(FASTSEP_ERROR_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        f = failure(FASTSEP_ERROR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        f = failure(FASTSEP_ERROR_INTERNAL, "internal error: an unknown exception");
    }
    if (f.status != FASTSEP_OK) {
        try {
            // one line: messages from OpenVINO may carry more
            std::string m = f.message.substr(0, f.message.find('\n'));
            if (m.empty()) m = "failed";
            *message_out = std::move(m);
        } catch (...) {
            // no memory for the message: the status still tells
        }
    }
    return f.status;
}

const Failure kOk{FASTSEP_OK, ""};

// A call on a separator: NULL is an argument error reported on the thread's message; an exception thrown by the
// pipeline or the resamplers leaves the stream in an unknown state, so the separator then accepts only reset.
template <class Fn>
fastsep_status on_separator(fastsep_separator* s, const char* what, Fn&& fn) noexcept {
    if (s == nullptr) {
        try {
            t_last_error = std::string(what) + ": the separator is NULL";
        } catch (...) {
        }
        return FASTSEP_ERROR_ARGUMENT;
    }
    return guarded(&s->last_error, std::forward<Fn>(fn));
}

bool same(const char* a, const char* b) { return std::strcmp(a, b) == 0; }

std::string quoted(const char* s) {
    std::string q(s, strnlen(s, 64));
    for (char& c : q)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    return "'" + q + (std::strlen(s) > 64 ? "...'" : "'");
}

bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    if (s.size() < n) return false;
    for (size_t i = 0; i < n; ++i)
        if (std::tolower(static_cast<unsigned char>(s[s.size() - n + i])) != suffix[i]) return false;
    return true;
}

void require_finite(const float* x, int64_t values) {
    bool ok = true;
    for (int64_t i = 0; i < values; ++i) ok &= std::isfinite(x[i]);
    if (!ok) throw fastsep::InputError("the audio contains NaN or Inf samples");
}

void check_stems(const fastsep_separator& s, float* const* stems) {
    if (stems == nullptr) throw fastsep::InvalidArgument("stems is NULL");
    for (int i = 0; i < s.config.n_stems(); ++i)
        if (stems[i] == nullptr) throw fastsep::InvalidArgument("stems[" + std::to_string(i) + "] is NULL");
}

void check_usable(const fastsep_separator& s) {
    if (s.failed) throw fastsep::StateError("the separator failed on this song: fastsep_reset before the next one");
}

// The options, checked whole before anything is loaded.
struct Settings {
    std::string model, precision;
    int threads = 0, rate = kDefaultRate, channels = 2, segment_frames = 0;
    float overlap = 0.0f;
    bool full_band = false;
};

Settings check_options(const fastsep_options* o) {
    using fastsep::InvalidArgument;
    if (o == nullptr) throw InvalidArgument("options is NULL");
    if (o->size != sizeof(fastsep_options))
        throw InvalidArgument("options->size is " + std::to_string(o->size) + ", not " +
                              std::to_string(sizeof(fastsep_options)) +
                              " (sizeof(fastsep_options)): call fastsep_options_init first");
    Settings st;
    if (o->model == nullptr) throw InvalidArgument("options->model is NULL: give a model file");
    st.model = o->model;
    if (st.model.empty()) throw InvalidArgument("options->model is empty: give a model file");
    const char* device = o->device ? o->device : "cpu";
    if (same(device, "gpu"))
        throw Failure{FASTSEP_ERROR_DEVICE, "device 'gpu': this build of libfastsep has no GPU pipeline (CPU only)"};
    if (!same(device, "cpu") && !same(device, "auto"))
        throw InvalidArgument("device " + quoted(device) + " must be 'cpu', 'gpu' or 'auto'");
    st.precision = o->precision ? o->precision : "fp32";
    if (st.precision == "fp16")
        throw InvalidArgument("precision 'fp16' runs on the GPU only: use 'fp32' (or 'bf16' on a CPU with native bf16)");
    if (st.precision != "fp32" && st.precision != "bf16")
        throw InvalidArgument("precision " + quoted(o->precision) + " must be 'fp32', 'bf16' or 'fp16'");
    if (o->threads < 0) throw InvalidArgument("threads must be 0 (every core) or positive, not " +
                                              std::to_string(o->threads));
    st.threads = o->threads;
    if (o->sample_rate < 0) throw InvalidArgument("sample_rate must be 0 (44100) or positive, not " +
                                                  std::to_string(o->sample_rate));
    st.rate = o->sample_rate == 0 ? kDefaultRate : o->sample_rate;
    if (o->channels != 0 && o->channels != 1 && o->channels != 2)
        throw InvalidArgument("channels must be 1 or 2 (0: 2), not " + std::to_string(o->channels));
    st.channels = o->channels == 0 ? 2 : o->channels;
    if (!(o->overlap >= 0.0f && o->overlap <= 0.9f))  // NaN fails too
        throw InvalidArgument("overlap must be in [0, 0.9], not " + std::to_string(o->overlap));
    st.overlap = o->overlap;
    if (o->full_band != 0 && o->full_band != 1)
        throw InvalidArgument("full_band must be 0 or 1, not " + std::to_string(o->full_band));
    st.full_band = o->full_band == 1;
    if (o->segment_frames < 0 || o->segment_frames % 64 != 0)
        throw InvalidArgument("segment_frames must be 0 (the model's T) or a positive multiple of 64 (64, 128, 256, "
                              "512), not " + std::to_string(o->segment_frames));
    st.segment_frames = o->segment_frames;
    return st;
}

// The model's config from the ONNX metadata fastsep export-onnx writes (python/fastsep/models/onnx_export.py).
std::shared_ptr<ov::Model> read_model(const std::string& path, ModelConfig& config) {
    using fastsep::ModelError;
    if (ends_with(path, ".engine"))
        throw Failure{FASTSEP_ERROR_DEVICE, path + " is a TensorRT engine: it needs the GPU pipeline, which this "
                                                   "build of libfastsep does not have (give an ONNX file written by "
                                                   "fastsep export-onnx)"};
    // OpenVINO's message for a missing file is long and names its internals: say it plainly first
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) throw ModelError("cannot open the model " + path + ": " + std::strerror(errno));
    const int first = std::fgetc(f);
    std::fclose(f);
    // An ONNX ModelProto starts with its field 1, ir_version (tag byte 0x08), as protobuf writes fields in order.
    // Anything else is refused here: OpenVINO would try its other frontends on it, and they log to stderr.
    if (first != 0x08) throw ModelError(path + " is not an ONNX model: give an ONNX file written by fastsep export-onnx");
    auto model = cpu::OpenVinoNetwork::read_file(path);
    if (!model) throw ModelError("OpenVINO cannot read " + path);
    const std::string json = cpu::OpenVinoNetwork::metadata(*model, "fastsep_config");
    if (json.empty())
        throw ModelError(path + " carries no fastsep_config: give an ONNX file written by fastsep export-onnx");
    config = fastsep::capi::parse_model_config(json);
    const std::string precision = cpu::OpenVinoNetwork::metadata(*model, "fastsep_precision");
    if (!precision.empty() && precision != "fp32" && precision != "fp16")
        throw ModelError(path + ": fastsep_precision " + quoted(precision.c_str()) + " must be fp32 or fp16");
    return model;
}

// Frames of the caller's rate -> interleaved stereo at the pipeline's (mono duplicated, as Spleeter's to_stereo).
const float* as_stereo(const float* x, int64_t frames, int channels, std::vector<float>& scratch) {
    if (channels == 2) return x;
    scratch.resize(size_t(frames) * 2);
    for (int64_t i = 0; i < frames; ++i) scratch[2 * i] = scratch[2 * i + 1] = x[i];
    return scratch.data();
}

#if defined(FASTSEP_HAVE_RESAMPLER)
// Everything the pipeline has ready goes through the output resamplers into the queues.
void drain(fastsep_separator& s, bool final) {
    const int S = s.config.n_stems();
    const int64_t n = s.pipeline->available();
    if (n > 0) {
        s.scratch.resize(size_t(S) * size_t(n) * 2);
        s.stem_ptrs.resize(S);
        for (int i = 0; i < S; ++i) s.stem_ptrs[i] = s.scratch.data() + size_t(i) * size_t(n) * 2;
        s.pipeline->pull(s.stem_ptrs.data(), n);
    }
    for (int i = 0; i < S; ++i) {
        Queue& q = s.out[i];
        if (2 * q.begin > q.data.size()) {  // more than half pulled: drop it
            q.data.erase(q.data.begin(), q.data.begin() + q.begin);
            q.begin = 0;
        }
        if (n > 0) {
            const float* y = s.stem_ptrs[i];
            if (s.channels == 1) {  // mono stems are channel 0
                s.scratch2.resize(size_t(n));
                for (int64_t t = 0; t < n; ++t) s.scratch2[t] = y[2 * t];
                y = s.scratch2.data();
            }
            s.out_rs[i]->process(y, n, q.data);
        }
        if (final) {
            s.out_rs[i]->finish(q.data);
            // exactly as many frames as were pushed (as Separator.run's resample(y, rate, sample_rate, n))
            q.data.resize(q.begin + size_t(s.pushed - s.released) * s.channels, 0.0f);
        }
    }
}

int64_t queued(const fastsep_separator& s) {
    const int64_t q = int64_t(s.out[0].data.size() - s.out[0].begin) / s.channels;
    // until the end is known, never more than was pushed: the last frames may still be trimmed
    return s.finished ? q : std::min(q, s.pushed - s.released);
}
#endif

void push_frames(fastsep_separator& s, const float* frames, int64_t count) {
    check_usable(s);
    if (s.finished) throw fastsep::StateError("push after finish: fastsep_reset starts the next song");
    fastsep::require_range("count", count, 0, fastsep::kMaxSamples - s.pushed);
    if (count == 0) return;
    if (frames == nullptr) throw fastsep::InvalidArgument("frames is NULL");
    require_finite(frames, count * s.channels);  // before anything is kept
    s.failed = true;  // until the block is in: a failure below leaves the stream half-fed
    if (!s.resampled) {
        s.pipeline->push(as_stereo(frames, count, s.channels, s.scratch), count);
    } else {
#if defined(FASTSEP_HAVE_RESAMPLER)
        std::vector<float> y;
        s.in_rs->process(frames, count, y);
        const int64_t m = int64_t(y.size()) / s.channels;
        std::vector<float> st;
        s.pipeline->push(as_stereo(y.data(), m, s.channels, st), m);
        s.pushed += count;
        drain(s, false);
        s.failed = false;
        return;
#endif
    }
    s.pushed += count;
    s.failed = false;
}

void finish_song(fastsep_separator& s) {
    check_usable(s);
    if (s.finished) return;
    s.failed = true;
    if (s.resampled) {
#if defined(FASTSEP_HAVE_RESAMPLER)
        std::vector<float> y, st;
        s.in_rs->finish(y);
        const int64_t m = int64_t(y.size()) / s.channels;
        if (m > 0) s.pipeline->push(as_stereo(y.data(), m, s.channels, st), m);
        s.pipeline->finish();
        s.finished = true;
        drain(s, true);
#endif
    } else {
        s.pipeline->finish();
    }
    s.finished = true;
    s.failed = false;
}

int64_t available_frames(const fastsep_separator& s) {
    if (s.failed) return 0;
#if defined(FASTSEP_HAVE_RESAMPLER)
    if (s.resampled) return queued(s);
#endif
    return s.pipeline->available();
}

void pull_frames(fastsep_separator& s, float* const* stems, int64_t count) {
    check_usable(s);
    if (count < 0) throw fastsep::InvalidArgument("count must not be negative, not " + std::to_string(count));
    const int64_t available = available_frames(s);
    if (count > available)
        throw fastsep::StateError("pull of " + std::to_string(count) + " frames: " + std::to_string(available) +
                                  " are available");
    if (count == 0) return;
    check_stems(s, stems);
    const int S = s.config.n_stems();
    const int C = s.channels;
    if (s.resampled) {
#if defined(FASTSEP_HAVE_RESAMPLER)
        for (int i = 0; i < S; ++i) {
            Queue& q = s.out[i];
            std::memcpy(stems[i], q.data.data() + q.begin, sizeof(float) * size_t(count) * C);
            q.begin += size_t(count) * C;
        }
#endif
    } else if (C == 2) {
        s.pipeline->pull(stems, count);
    } else {
        s.scratch.resize(size_t(S) * size_t(count) * 2);
        s.stem_ptrs.resize(S);
        for (int i = 0; i < S; ++i) s.stem_ptrs[i] = s.scratch.data() + size_t(i) * size_t(count) * 2;
        s.pipeline->pull(s.stem_ptrs.data(), count);
        for (int i = 0; i < S; ++i)
            for (int64_t t = 0; t < count; ++t) stems[i][t] = s.stem_ptrs[i][2 * t];
    }
    s.released += count;
}

void reset_song(fastsep_separator& s) {
    s.failed = true;  // until everything is back to the start
    s.pipeline->reset();
#if defined(FASTSEP_HAVE_RESAMPLER)
    if (s.resampled) {
        s.in_rs->reset();
        for (auto& r : s.out_rs) r->reset();
        for (auto& q : s.out) {
            q.data.clear();
            q.data.shrink_to_fit();
            q.begin = 0;
        }
    }
#endif
    s.scratch.clear();
    s.scratch.shrink_to_fit();
    s.scratch2.clear();
    s.scratch2.shrink_to_fit();
    s.pushed = s.released = 0;
    s.finished = false;
    s.failed = false;
}

}  // namespace

extern "C" {

FASTSEP_API void fastsep_options_init(fastsep_options* options) {
    if (options == nullptr) return;
    std::memset(options, 0, sizeof(*options));
    options->size = sizeof(fastsep_options);
}

FASTSEP_API uint32_t fastsep_abi_version(void) { return FASTSEP_ABI_VERSION; }

FASTSEP_API const char* fastsep_version(void) { return FASTSEP_VERSION_STRING; }

FASTSEP_API fastsep_status fastsep_open(const fastsep_options* options, fastsep_separator** out) {
    std::string message;
    const fastsep_status status = guarded(&message, [&]() -> Failure {
        if (out == nullptr) throw fastsep::InvalidArgument("out is NULL");
        *out = nullptr;
        const Settings st = check_options(options);
        std::unique_ptr<fastsep_separator> s;
        {
            s.reset(new fastsep_separator);
            auto model = read_model(st.model, s->config);
            const ModelConfig& cfg = s->config;
            const int T = st.segment_frames == 0 ? cfg.T : st.segment_frames;
            if (T > cfg.T)
                throw fastsep::InvalidArgument("segment_frames " + std::to_string(T) +
                                               " is more than the model's T (" + std::to_string(cfg.T) + ")");
            s->channels = st.channels;
            s->rate = st.rate;
            s->resampled = st.rate != cfg.sample_rate;
#if defined(FASTSEP_HAVE_RESAMPLER)
            if (s->resampled) {
                s->in_rs.reset(new cpu::Resampler(st.rate, cfg.sample_rate, st.channels));
                for (int i = 0; i < cfg.n_stems(); ++i)
                    s->out_rs.emplace_back(new cpu::Resampler(cfg.sample_rate, st.rate, st.channels));
                s->out.resize(cfg.n_stems());
            }
#else
            if (s->resampled)
                throw fastsep::InvalidArgument("sample_rate " + std::to_string(st.rate) + ": this build has no "
                                               "resampler; push audio at the model's " +
                                               std::to_string(cfg.sample_rate) + " Hz");
#endif
            s->network = std::make_shared<cpu::OpenVinoNetwork>(model, cfg.n_stems(), T, cfg.F, 1, st.precision,
                                                                st.threads);
            model.reset();
            cpu::Config pc;
            pc.n_stems = cfg.n_stems();
            pc.F = cfg.F;
            pc.T = T;
            pc.frame_length = cfg.frame_length;
            pc.frame_step = cfg.frame_step;
            pc.separation_exponent = static_cast<float>(cfg.separation_exponent);
            pc.mask_extension = st.full_band || cfg.mask_extension == "average" ? fastsep::dsp::MaskExtension::Average
                                                                                 : fastsep::dsp::MaskExtension::Zeros;
            // as python/fastsep/quality.py segment_hop: round(T * (1 - overlap)), at least 1; 0 = Spleeter's
            pc.segment_hop = st.overlap == 0.0f
                                 ? 0
                                 : std::max(1, static_cast<int>(std::lround(T * (1.0 - double(st.overlap)))));
            pc.batch = 1;  // as Separator on the CPU (batch_segments 1)
            pc.threads = st.threads;
            s->pipeline.reset(new cpu::Pipeline(pc, s->network));
        }
        *out = s.release();
        return kOk;
    });
    if (status != FASTSEP_OK) {
        try {
            t_last_error = "fastsep_open: " + message;
        } catch (...) {
        }
    }
    return status;
}

FASTSEP_API void fastsep_close(fastsep_separator* separator) {
    try {
        delete separator;
    } catch (...) {
        // destructors do not throw; nothing to report from a void function
    }
}

FASTSEP_API int32_t fastsep_stem_count(const fastsep_separator* separator) {
    if (separator == nullptr) {
        try {
            t_last_error = "fastsep_stem_count: the separator is NULL";
        } catch (...) {
        }
        return -1;
    }
    return separator->config.n_stems();
}

FASTSEP_API const char* fastsep_stem_name(const fastsep_separator* separator, int32_t index) {
    if (separator == nullptr || index < 0 || index >= separator->config.n_stems()) return nullptr;
    return separator->config.instruments[index].c_str();
}

FASTSEP_API int64_t fastsep_latency(const fastsep_separator* separator) {
    if (separator == nullptr) {
        try {
            t_last_error = "fastsep_latency: the separator is NULL";
        } catch (...) {
        }
        return -1;
    }
    const int64_t latency = separator->pipeline->latency();
#if defined(FASTSEP_HAVE_RESAMPLER)
    if (separator->resampled) {
        // the input resampler's output frame k sits at input frame floor(k * in / out) and is final once the
        // input holds K = lookahead() frames more (csrc/src/cpu/resampler.cpp): frame latency - 1 must be out.
        // The output filter's look-ahead is within the first chunk's output (thousands of frames).
        const int64_t in_rate = separator->rate, model_rate = separator->config.sample_rate;
        const int64_t bound = (latency - 1) * in_rate / model_rate + separator->in_rs->lookahead() + 1;
        // The resampler emits frames in pairs, so the bound can be a frame or two late: the exact count is the
        // fewest input frames whose resampled stream holds `latency` frames, found by resampling silence (a mono
        // stream, a few bisection steps, once).
        if (separator->exact_latency < 0) try {
            auto enough = [&](int64_t n) {
                cpu::Resampler probe(static_cast<int>(in_rate), static_cast<int>(model_rate), 1);
                std::vector<float> zeros(static_cast<size_t>(n), 0.0f), out;
                probe.process(zeros.data(), n, out);
                return static_cast<int64_t>(out.size()) >= latency;
            };
            int64_t lo = std::max<int64_t>(bound - separator->in_rs->lookahead() - 4, 0), hi = bound;
            if (!enough(hi)) {
                separator->exact_latency = bound;  // never expected: keep the bound
            } else {
                while (hi - lo > 1) {
                    const int64_t mid = lo + (hi - lo) / 2;
                    (enough(mid) ? hi : lo) = mid;
                }
                separator->exact_latency = enough(lo) ? lo : hi;
            }
        } catch (...) {  // no exception crosses the ABI: the bound is still a true latency
            return bound;
        }
        return separator->exact_latency;
    }
#endif
    return latency;
}

FASTSEP_API fastsep_status fastsep_push(fastsep_separator* separator, const float* frames, int64_t count) {
    return on_separator(separator, "fastsep_push", [&]() -> Failure {
        if (count < 0) throw fastsep::InvalidArgument("count must not be negative, not " + std::to_string(count));
        push_frames(*separator, frames, count);
        return kOk;
    });
}

FASTSEP_API fastsep_status fastsep_finish(fastsep_separator* separator) {
    return on_separator(separator, "fastsep_finish", [&]() -> Failure {
        finish_song(*separator);
        return kOk;
    });
}

FASTSEP_API int64_t fastsep_available(const fastsep_separator* separator) {
    if (separator == nullptr) {
        try {
            t_last_error = "fastsep_available: the separator is NULL";
        } catch (...) {
        }
        return -1;
    }
    return available_frames(*separator);
}

FASTSEP_API fastsep_status fastsep_pull(fastsep_separator* separator, float* const* stems, int64_t count) {
    return on_separator(separator, "fastsep_pull", [&]() -> Failure {
        pull_frames(*separator, stems, count);
        return kOk;
    });
}

FASTSEP_API fastsep_status fastsep_reset(fastsep_separator* separator) {
    return on_separator(separator, "fastsep_reset", [&]() -> Failure {
        reset_song(*separator);
        return kOk;
    });
}

FASTSEP_API fastsep_status fastsep_separate(fastsep_separator* separator, const float* frames, int64_t count,
                                            float* const* stems) {
    return on_separator(separator, "fastsep_separate", [&]() -> Failure {
        fastsep_separator& s = *separator;
        // every argument before the song is touched
        if (count < 0) throw fastsep::InvalidArgument("count must not be negative, not " + std::to_string(count));
        if (count > 0 && frames == nullptr) throw fastsep::InvalidArgument("frames is NULL");
        if (count > 0) check_stems(s, stems);
        reset_song(s);
        if (!s.resampled && s.channels == 2 && count > 0) {
            // Pipeline::separate, as Separator.run: the song read in place and the stems written in place, no
            // copies (the same stems as streaming, to the last bit: docs/architecture.md §4.7, tested)
            require_finite(frames, 2 * count);
            const int S = s.config.n_stems();
            const size_t per_stem = size_t(count) * 2;
            bool in_place = true;  // the caller's stems one after another in one buffer, as (S, count, 2)
            for (int i = 1; i < S; ++i) in_place = in_place && stems[i] == stems[0] + size_t(i) * per_stem;
            std::vector<float> out;
            if (!in_place) out.resize(size_t(S) * per_stem);
            s.failed = true;
            s.pipeline->separate(frames, count, in_place ? stems[0] : out.data());
            if (!in_place)
                for (int i = 0; i < S; ++i)
                    std::memcpy(stems[i], out.data() + size_t(i) * per_stem, sizeof(float) * per_stem);
            s.pushed = s.released = count;
            s.finished = true;
            s.failed = false;
            return kOk;
        }
        push_frames(s, frames, count);
        finish_song(s);
        const int64_t n = available_frames(s);
        if (n != count)
            throw std::logic_error("the song gave " + std::to_string(n) + " frames for " + std::to_string(count));
        pull_frames(s, stems, count);
        return kOk;
    });
}

FASTSEP_API const char* fastsep_last_error(const fastsep_separator* separator) {
    return separator == nullptr ? t_last_error.c_str() : separator->last_error.c_str();
}

}  // extern "C"
