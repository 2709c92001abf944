#include "fastsep/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "fastsep/sizes.hpp"

namespace fastsep {

namespace {
std::size_t fbytes(int64_t n) { return static_cast<std::size_t>(n) * sizeof(float); }

// Bytes of every buffer of a configuration, computed with the checks of sizes.hpp before anything is allocated.
struct BufferSizes {
    std::size_t window, spectrum, net_input, net_output, mask_mean, stems, tails, chunk_output, chunk_input, fade,
        blended, blend_tails;
};

BufferSizes buffer_sizes(const PipelineConfig& c, int64_t row_stride) {
    const int64_t S = c.n_stems, N = c.frame_length, H = c.frame_step, F = c.F;
    const int64_t frames = checked_product("max_batch x T", {int64_t(c.max_batch), int64_t(c.T)});
    const int64_t net = static_cast<int64_t>(net_dtype_bytes(c.dtype));
    BufferSizes b{};
    b.window = buffer_bytes("window", 4, {N});
    b.spectrum = buffer_bytes("spectrum buffer", 4, {2, frames, row_stride});
    b.net_input = buffer_bytes("network input", net, {frames, 2, F});
    b.net_output = buffer_bytes("network output", net, {frames, S, 2, F});
    b.mask_mean = buffer_bytes("mask means", 4, {S, 2, frames});
    b.stems = buffer_bytes("stems buffer", 4, {S, 2, frames, row_stride});
    b.tails = buffer_bytes("overlap-add tails", 4, {2, S, 2, N - H});
    b.chunk_output = buffer_bytes("chunk output", 4, {S, frames, H, 2});
    // ((B*T - 1)*H + N) samples x 2 channels: frames * H fits, as the chunk output above holds that many
    b.chunk_input = buffer_bytes("chunk input", 4, {frames * H + N - H, 2});
    b.fade = buffer_bytes("fade", 8, {int64_t(c.T)});
    b.blended = buffer_bytes("blended estimates", 4, {S, 2, frames, F});
    b.blend_tails = buffer_bytes("blended tails", 4, {2, S, 2, int64_t(c.T), F});
    return b;
}

std::string describe(const PipelineConfig& c) {
    return "Pipeline(n_stems=" + std::to_string(c.n_stems) + ", F=" + std::to_string(c.F) +
           ", T=" + std::to_string(c.T) + ", frame_length=" + std::to_string(c.frame_length) +
           ", frame_step=" + std::to_string(c.frame_step) + ", max_batch=" + std::to_string(c.max_batch) +
           ", segment_hop=" + std::to_string(c.segment_hop) + ")";
}
}  // namespace

Pipeline::Pipeline(const PipelineConfig& config) : cfg_(config) {
    require_range("n_stems", cfg_.n_stems, 1, kMaxStems);
    require_range("frame_length", cfg_.frame_length, 2, kMaxFrameLength);
    FASTSEP_REQUIRE(cfg_.frame_length % 2 == 0, "frame_length must be even");
    FASTSEP_REQUIRE(cfg_.frame_step > 0 && cfg_.frame_length % cfg_.frame_step == 0,
                    "frame_length must be a positive multiple of frame_step");
    require_range("F", cfg_.F, 1, cfg_.frame_length / 2 + 1);
    require_range("T", cfg_.T, 1, std::numeric_limits<int>::max());
    require_range("max_batch", cfg_.max_batch, 1, std::numeric_limits<int>::max());
    FASTSEP_REQUIRE(std::isfinite(cfg_.separation_exponent) && cfg_.separation_exponent > 0,
                    "separation_exponent must be a positive number");
    FASTSEP_REQUIRE(cfg_.mask_extension == dsp::MaskExtension::Zeros ||
                        cfg_.mask_extension == dsp::MaskExtension::Average,
                    "mask_extension must be zeros or average");
    require_range("segment_hop", cfg_.segment_hop, 0, cfg_.T);
    FASTSEP_REQUIRE(cfg_.dtype == NetDType::Float32 || cfg_.dtype == NetDType::Float16, "dtype must be fp32 or fp16");
    N_ = cfg_.frame_length;
    H_ = cfg_.frame_step;
    K_ = N_ / 2 + 1;
    hop_ = cfg_.segment_hop == 0 ? cfg_.T : cfg_.segment_hop;
    S_ = cfg_.n_stems;
    B_ = cfg_.max_batch;
    R_ = K_ + (K_ % 2);
    row_stride_ = 2 * static_cast<int64_t>(R_);

    BufferSizes bytes;
    try {
        bytes = buffer_sizes(cfg_, row_stride_);
    } catch (const InvalidArgument& e) {
        throw InvalidArgument(describe(cfg_) + ": " + e.what());
    }
    input_bytes_ = bytes.chunk_input;
    output_bytes_ = bytes.chunk_output;
    FASTSEP_CHECK(cudaGetDevice(&device_));

    std::vector<float> win(N_), syn(N_);
    for (int n = 0; n < N_; ++n) {
        win[n] = dsp::analysis_window(n, N_);
        syn[n] = dsp::synthesis_window(n, N_);
    }
    analysis_window_ = DeviceBuffer(bytes.window);
    synthesis_window_ = DeviceBuffer(bytes.window);
    FASTSEP_CHECK(cudaMemcpy(analysis_window_.data(), win.data(), bytes.window, cudaMemcpyHostToDevice));
    FASTSEP_CHECK(cudaMemcpy(synthesis_window_.data(), syn.data(), bytes.window, cudaMemcpyHostToDevice));

    spectrum_ = DeviceBuffer(bytes.spectrum);
    net_input_ = DeviceBuffer(bytes.net_input);
    net_output_ = DeviceBuffer(bytes.net_output);
    if (cfg_.mask_extension == dsp::MaskExtension::Average) mask_mean_ = DeviceBuffer(bytes.mask_mean);
    if (overlapped()) {
        std::vector<double> fade(cfg_.T);
        for (int j = 0; j < cfg_.T; ++j) fade[j] = dsp::fade_weight(j, cfg_.T, hop_);
        fade_ = DeviceBuffer(bytes.fade);
        FASTSEP_CHECK(cudaMemcpy(fade_.data(), fade.data(), bytes.fade, cudaMemcpyHostToDevice));
        blended_ = DeviceBuffer(bytes.blended);
        blend_tails_ = DeviceBuffer(bytes.blend_tails);
    }
    stems_ = DeviceBuffer(bytes.stems);
    tails_ = DeviceBuffer(bytes.tails);
    known_ab_ = DeviceBuffer(fbytes(2 * int64_t(S_)));
    plans_for(B_);  // the largest plans first: their work area is the one to allocate
}

void Pipeline::require_batch(int batch) const { require_range("batch", batch, 1, B_); }

int64_t Pipeline::segments_for(int64_t samples) const { return schedule().segments_for(samples); }

void Pipeline::set_work_area(std::size_t bytes) {
    // plans share one work area; they only ever run one at a time on the pipeline's stream
    stream_.synchronize();
    work_area_ = DeviceBuffer(bytes);
    if (!work_area_.data()) return;  // no plan needs one
    for (auto& kv : plans_) {
        FASTSEP_CHECK(cufftSetWorkArea(kv.second.r2c.get(), work_area_.data()));
        FASTSEP_CHECK(cufftSetWorkArea(kv.second.c2r.get(), work_area_.data()));
    }
}

Pipeline::Plans& Pipeline::plans_for(int batch) {
    auto it = plans_.find(batch);
    if (it != plans_.end()) return it->second;
    Plans p;
    long long n[1] = {N_};
    long long real_embed[1] = {row_stride_};
    long long complex_embed[1] = {R_};
    const long long frames = static_cast<long long>(batch) * cfg_.T;
    std::size_t ws_r2c = 0, ws_c2r = 0;
    FASTSEP_CHECK(cufftSetAutoAllocation(p.r2c.get(), 0));
    FASTSEP_CHECK(cufftSetAutoAllocation(p.c2r.get(), 0));
    // in place: real rows of 2R floats <-> complex rows of R slots (K bins)
    FASTSEP_CHECK(cufftMakePlanMany64(p.r2c.get(), 1, n, real_embed, 1, row_stride_, complex_embed, 1, R_, CUFFT_R2C,
                                      2 * frames, &ws_r2c));
    FASTSEP_CHECK(cufftMakePlanMany64(p.c2r.get(), 1, n, complex_embed, 1, R_, real_embed, 1, row_stride_, CUFFT_C2R,
                                      static_cast<long long>(S_) * 2 * frames, &ws_c2r));
    FASTSEP_CHECK(cufftSetStream(p.r2c.get(), stream_.get()));
    FASTSEP_CHECK(cufftSetStream(p.c2r.get(), stream_.get()));
    auto& slot = plans_.emplace(batch, std::move(p)).first->second;
    const std::size_t need = std::max(ws_r2c, ws_c2r);
    if (need > work_area_.bytes()) {
        set_work_area(need);  // also sets the new plans' work area
    } else if (work_area_.data()) {
        FASTSEP_CHECK(cufftSetWorkArea(slot.r2c.get(), work_area_.data()));
        FASTSEP_CHECK(cufftSetWorkArea(slot.c2r.get(), work_area_.data()));
    }
    return slot;
}

void Pipeline::ensure_host_input(bool staged) {
    for (int i = 0; i < 2; ++i) {
        if (!input_[i].data()) input_[i] = DeviceBuffer(input_bytes_);
        if (staged && !pinned_in_[i].data()) pinned_in_[i] = PinnedBuffer(input_bytes_);
    }
}

void Pipeline::ensure_host_output(bool staged) {
    for (int i = 0; i < 2; ++i) {
        if (!out_chunk_[i].data()) out_chunk_[i] = DeviceBuffer(output_bytes_);
        if (staged && !pinned_out_[i].data()) pinned_out_[i] = PinnedBuffer(output_bytes_);
    }
}

void Pipeline::use_known_network(const std::vector<float>& a, const std::vector<float>& b) {
    FASTSEP_REQUIRE(static_cast<int>(a.size()) == S_ && static_cast<int>(b.size()) == S_,
                    "known network: a and b need one value per stem");
    DeviceGuard guard(device_);
    std::vector<float> ab(a);
    ab.insert(ab.end(), b.begin(), b.end());
    stream_.synchronize();
    FASTSEP_CHECK(cudaMemcpy(known_ab_.data(), ab.data(), known_ab_.bytes(), cudaMemcpyHostToDevice));
    known_ = true;
}

void Pipeline::run_known_network(int batch) {
    FASTSEP_REQUIRE(known_, "the known network is not set: call use_known_network first");
    require_batch(batch);
    const float* ab = known_ab_.as<float>();
    kernels::known_network(net_input_.data(), net_output_.data(), ab, ab + S_, batch, S_, cfg_.T, cfg_.F,
                           cfg_.dtype, stream_.get());
}

void Pipeline::copy_net_input_to_host(void* dst, int batch) {
    require_batch(batch);
    DeviceGuard guard(device_);
    const std::size_t bytes = static_cast<std::size_t>(batch) * 2 * cfg_.T * cfg_.F * net_dtype_bytes(cfg_.dtype);
    FASTSEP_CHECK(cudaMemcpyAsync(dst, net_input_.data(), bytes, cudaMemcpyDeviceToHost, stream_.get()));
    stream_.synchronize();
}

void Pipeline::copy_net_output_from_host(const void* src, int batch) {
    require_batch(batch);
    DeviceGuard guard(device_);
    const std::size_t bytes =
        static_cast<std::size_t>(batch) * S_ * 2 * cfg_.T * cfg_.F * net_dtype_bytes(cfg_.dtype);
    FASTSEP_CHECK(cudaMemcpyAsync(net_output_.data(), src, bytes, cudaMemcpyHostToDevice, stream_.get()));
    stream_.synchronize();
}

std::size_t Pipeline::device_bytes() const noexcept {
    std::size_t total = analysis_window_.bytes() + synthesis_window_.bytes() + input_[0].bytes() +
                        input_[1].bytes() + spectrum_.bytes() + net_input_.bytes() + net_output_.bytes() +
                        mask_mean_.bytes() + stems_.bytes() + tails_.bytes() + fade_.bytes() + blended_.bytes() +
                        blend_tails_.bytes() + out_chunk_[0].bytes() +
                        out_chunk_[1].bytes() + known_ab_.bytes() + work_area_.bytes();
    return total;
}

void Pipeline::separate(const PipelineInput& input, const PipelineOutput& output, const Network& network) {
    require_samples("samples", input.samples);
    if (input.samples == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceGuard guard(device_);
    // Register: page-lock the caller's memory for the call (DMA straight from/into it), else stage. Declared
    // before the try: unregistered only after the streams have drained, also when the call fails.
    PipelineInput in = input;
    PipelineOutput out = output;
    HostRegistration in_reg, out_reg;
    if (!in.on_device && in.host == HostMemory::Register && in.data) {
        in_reg = HostRegistration::try_register(in.data, fbytes(2 * in.samples));
        in.host = in_reg ? HostMemory::Direct : HostMemory::Stage;
    }
    if (!out.on_device && out.host == HostMemory::Register && out.data) {
        out_reg = HostRegistration::try_register(out.data, fbytes(int64_t(S_) * 2 * in.samples));
        out.host = out_reg ? HostMemory::Direct : HostMemory::Stage;
    }
    last_path_ = HostPathReport{in.host, out.host, static_cast<bool>(in_reg), static_cast<bool>(out_reg)};
    try {
        separate_locked(in, out, network);
    } catch (...) {
        // leave nothing in flight that reads the caller's buffers or our staging, then report
        (void)cudaStreamSynchronize(stream_.get());
        (void)cudaStreamSynchronize(h2d_.get());
        (void)cudaStreamSynchronize(d2h_.get());
        (void)cudaGetLastError();
        throw;
    }
}

void Pipeline::separate_locked(const PipelineInput& input, const PipelineOutput& output, const Network& network) {
    const int64_t L = input.samples;
    FASTSEP_REQUIRE(input.data != nullptr && output.data != nullptr, "null input or output");
    FASTSEP_REQUIRE(network || known_, "no network: pass a network callback or call use_known_network()");
    const bool in_host = !input.on_device, out_host = !output.on_device;
    const bool in_staged = in_host && input.host != HostMemory::Direct;
    const bool out_staged = out_host && output.host != HostMemory::Direct;
    if (in_host) ensure_host_input(in_staged);
    if (out_host) ensure_host_output(out_staged);

    cudaStream_t st = stream_.get();
    const int T = cfg_.T;
    const int64_t tail_len = N_ - H_;
    const int64_t tail_block = int64_t(S_) * 2 * tail_len;
    const int64_t chunk_capacity = int64_t(B_) * T * H_;  // output samples per stem held by out_chunk_

    if (input.on_device || output.on_device) {  // caller's device buffers: wait for the work that owns them
        cudaStream_t producer = input.has_producer ? input.producer : cudaStreamLegacy;
        producer_ready_.record(producer);
        FASTSEP_CHECK(cudaStreamWaitEvent(st, producer_ready_.get(), 0));
    }
    FASTSEP_CHECK(cudaMemsetAsync(tails_.data(), 0, fbytes(tail_block), st));

    // staged output: the host copies chunk k-1 out of its pinned slot while the GPU works on chunk k
    struct Pending {
        bool active = false;
        int slot = 0;
        int64_t t_lo = 0, t_hi = 0;
    } pending;
    auto drain = [&](Pending& p) {
        if (!p.active) return;
        out_free_[p.slot].synchronize();
        const int64_t n = p.t_hi - p.t_lo;
        const float* src = pinned_out_[p.slot].as<float>();
        for (int s = 0; s < S_; ++s)
            std::memcpy(output.data + (int64_t(s) * L + p.t_lo) * 2, src + int64_t(s) * n * 2, fbytes(2 * n));
        p.active = false;
    };

    const Schedule sched = schedule();
    const int64_t nseg = sched.segments_for(L);
    const bool blend = overlapped();
    const int64_t blend_block = int64_t(S_) * 2 * T * cfg_.F;  // one blended tail
    int64_t blend_tail_frames = 0;
    int cur = 0;
    int64_t chunk = 0;
    for (int64_t seg0 = 0; seg0 < nseg; seg0 += B_, ++chunk) {
        const int slot = static_cast<int>(chunk % 2);
        // the chunk's segments hold frames [first, first + span); frames [first, first + count) are final after it
        // (no later segment holds them), the rest is carried as blended sums (docs/spec.md §12). Spleeter's
        // segments: span = count = b*T.
        const Chunk c = sched.chunk(seg0, nseg);
        const int b = c.b;
        const int64_t span = c.span, count = c.count, first = c.first;
        const int64_t t0 = sched.t0(c);  // original sample of the chunk's first frame sample

        // 1. waveform of the chunk: [t0, (first + span - 1) * H) within [0, L), uploaded on h2d_ into this
        // slot once framing of chunk k-2 (the slot's last reader) is done
        const float* x;
        int64_t x_origin, x_len;
        if (input.on_device) {
            x = input.data;
            x_origin = 0;
            x_len = L;
        } else {
            const int64_t lo = std::max<int64_t>(sched.input_begin(c), 0);
            const int64_t hi = std::min<int64_t>(sched.input_end(c), L);
            const int64_t n = std::max<int64_t>(hi - lo, 0);
            FASTSEP_CHECK(cudaStreamWaitEvent(h2d_.get(), in_free_[slot].get(), 0));
            if (n > 0) {
                const float* src = input.data + 2 * lo;
                if (in_staged) {
                    in_ready_[slot].synchronize();  // the slot's previous upload has left the staging buffer
                    std::memcpy(pinned_in_[slot].data(), src, fbytes(2 * n));
                    src = pinned_in_[slot].as<float>();
                }
                FASTSEP_CHECK(cudaMemcpyAsync(input_[slot].data(), src, fbytes(2 * n), cudaMemcpyHostToDevice,
                                              h2d_.get()));
            }
            in_ready_[slot].record(h2d_.get());
            FASTSEP_CHECK(cudaStreamWaitEvent(st, in_ready_[slot].get(), 0));
            x = input_[slot].as<float>();
            x_origin = lo;
            x_len = n;
        }

        // STFT: frame + window, in-place batched R2C, magnitudes into the network input
        Plans& plans = plans_for(b);
        float* frames = spectrum_.as<float>();
        kernels::frame_window(dsp::FrameArgs{x, x_origin, x_len, first, span, N_, H_, row_stride_,
                                             analysis_window_.as<float>(), frames},
                              st);
        if (in_host) in_free_[slot].record(st);  // the input slot may be refilled
        FASTSEP_CHECK(cufftExecR2C(plans.r2c.get(), frames, spectrum_.as<cufftComplex>()));
        kernels::magnitude(dsp::MagnitudeArgs{spectrum_.as<dsp::Complex>(), span, R_, T, cfg_.F, hop_},
                           net_input_.data(), cfg_.dtype, st);

        // 2. the network
        if (network)
            network(b);
        else
            run_known_network(b);

        // 2b. overlapped segments: per-frame estimates of frames [first, first + span), one "segment" of span frames
        const void* estimates = net_output_.data();
        int est_frames = T;
        NetDType est_dtype = cfg_.dtype;
        if (blend) {
            float* tails = blend_tails_.as<float>();
            kernels::blend(BlendLaunch{net_output_.data(), fade_.as<double>(), tails + (chunk % 2) * blend_block,
                                       blended_.as<float>(), tails + (1 - chunk % 2) * blend_block, seg0, nseg, span,
                                       count, blend_tail_frames, b, S_, T, cfg_.F, hop_, cfg_.dtype},
                           st);
            blend_tail_frames = span - count;
            estimates = blended_.data();
            est_frames = static_cast<int>(span);
            est_dtype = NetDType::Float32;
        }

        // 3. + 4. masks, masked spectra, in-place batched C2R
        MaskLaunch m{estimates,
                     spectrum_.as<dsp::Complex>(),
                     mask_mean_.as<float>(),
                     stems_.as<dsp::Complex>(),
                     count,
                     S_,
                     K_,
                     R_,
                     est_frames,
                     cfg_.F,
                     cfg_.separation_exponent,
                     dsp::epsilon_over_n(S_),
                     cfg_.mask_extension,
                     est_dtype,
                     span};
        kernels::apply_masks(m, st);
        FASTSEP_CHECK(cufftExecC2R(plans.c2r.get(), stems_.as<cufftComplex>(), stems_.as<float>()));

        // window, overlap-add (gather), x2/3, crop
        dsp::OlaArgs o{};
        o.frames = stems_.as<float>();
        o.row_stride = row_stride_;
        o.count = count;
        o.first_frame = first;
        o.N = N_;
        o.H = H_;
        o.S = S_;
        o.window = synthesis_window_.as<float>();
        o.inv_n = 1.0f / static_cast<float>(N_);
        o.tail_in = tails_.as<float>() + cur * tail_block;
        o.tail_out = tails_.as<float>() + (1 - cur) * tail_block;
        o.L = L;
        if (output.on_device) {
            o.out = output.data;
            o.out_origin = 0;
            o.out_len = L;
            o.out_stem_stride = 2 * L;
        } else {
            // the slot's last download (chunk k-2) must be done before overlap-add overwrites it
            FASTSEP_CHECK(cudaStreamWaitEvent(st, out_free_[slot].get(), 0));
            o.out = out_chunk_[slot].as<float>();
            o.out_origin = t0;
            o.out_len = chunk_capacity;
            o.out_stem_stride = 2 * chunk_capacity;
        }
        kernels::overlap_add(o, st);
        cur = 1 - cur;

        // 5. download the chunk's finished samples [t0, t0 + count*H) within [0, L) on d2h_, after overlap-add
        if (out_host) {
            out_ready_[slot].record(st);
            FASTSEP_CHECK(cudaStreamWaitEvent(d2h_.get(), out_ready_[slot].get(), 0));
            const int64_t t_lo = std::max<int64_t>(t0, 0);
            const int64_t t_hi = std::min<int64_t>(t0 + count * H_, L);
            const int64_t n = t_hi - t_lo;
            if (n > 0) {
                const float* src = out_chunk_[slot].as<float>() + 2 * (t_lo - t0);
                for (int s = 0; s < S_; ++s) {  // one copy per stem: no 2-D pitch limit on long songs
                    float* dst = out_staged ? pinned_out_[slot].as<float>() + int64_t(s) * n * 2
                                            : output.data + (int64_t(s) * L + t_lo) * 2;
                    FASTSEP_CHECK(cudaMemcpyAsync(dst, src + int64_t(s) * chunk_capacity * 2, fbytes(2 * n),
                                                  cudaMemcpyDeviceToHost, d2h_.get()));
                }
            }
            out_free_[slot].record(d2h_.get());
            if (out_staged) {
                drain(pending);  // chunk k-1, in the other slot, while this one runs
                if (n > 0) pending = Pending{true, slot, t_lo, t_hi};
            }
        }
    }
    drain(pending);
    // the end of the call: everything on all three streams is done (the caller's memory may be unregistered)
    stream_.synchronize();
    h2d_.synchronize();
    d2h_.synchronize();
}

}  // namespace fastsep
