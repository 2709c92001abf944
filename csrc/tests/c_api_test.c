/* Tests of libfastsep's C API (csrc/include/fastsep.h, issue 18), written in plain C99 against the header alone.
 *
 *   fastsep_c_api_test MODEL.onnx
 *       every check below; prints "N passed, M failed" last and exits non-zero on a failure
 *   fastsep_c_api_test MODEL.onnx --separate IN.f32 OUT.f32 [--rate R] [--channels C] [--overlap X] [--full-band]
 *                      [--segment-frames T] [--blocks SEED]
 *       IN.f32: interleaved float32 frames; OUT.f32: the stems one after another (stem, frame, channel), by
 *       fastsep_separate, or streamed in random blocks with --blocks (tests/test_c_api.py compares them with
 *       fastsep.Separator's)
 *
 * MODEL.onnx: written by `fastsep export-onnx` (the 2stems model). The song is synthetic (deterministic tones and
 * noise): the comparison with Spleeter's numbers on real music is tests/test_c_api.py's. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastsep.h"

#define PI 3.14159265358979323846

static int passed = 0, failed = 0;

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        if (cond) {                                                                          \
            ++passed;                                                                        \
        } else {                                                                             \
            ++failed;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond);       \
        }                                                                                    \
    } while (0)

/* a failing call: the status expected and a message */
#define CHECK_FAILS(call, status, sep)                                                       \
    do {                                                                                     \
        fastsep_status got_ = (call);                                                        \
        const char *msg_ = fastsep_last_error(sep);                                          \
        CHECK(got_ == (status), #call);                                                      \
        CHECK(msg_ != NULL && msg_[0] != '\0', "a message for " #call);                      \
        if (got_ != (status))                                                                \
            fprintf(stderr, "  got status %d: %s\n", (int)got_, msg_ ? msg_ : "(null)");     \
    } while (0)

static const char *model_path;
static int have_resampler = 0;

/* ------------------------------------------------------------------------------------------- helpers */

static uint64_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

/* a synthetic song: a few tones that come and go plus noise, in [-0.9, 0.9] */
static float *make_song(int64_t frames, int channels, int rate) {
    float *x = (float *)malloc(sizeof(float) * (size_t)(frames * channels));
    int64_t t;
    int c;
    if (!x) return NULL;
    for (t = 0; t < frames; ++t) {
        double s = (double)t / rate;
        for (c = 0; c < channels; ++c) {
            double v = 0.3 * sin(2 * PI * (220.0 + 110.0 * c) * s) * (0.5 + 0.5 * sin(2 * PI * 0.25 * s)) +
                       0.2 * sin(2 * PI * 1320.0 * s + c) * (sin(2 * PI * 0.1 * s) > 0) +
                       0.1 * ((double)(rng() % 20001) / 10000.0 - 1.0);
            x[t * channels + c] = (float)v;
        }
    }
    return x;
}

static fastsep_options options_for(int rate, int channels) {
    fastsep_options o;
    fastsep_options_init(&o);
    o.model = model_path;
    o.sample_rate = rate;
    o.channels = channels;
    return o;
}

static fastsep_separator *open_or_null(const fastsep_options *o) {
    fastsep_separator *s = NULL;
    fastsep_status st = fastsep_open(o, &s);
    if (st != FASTSEP_OK) fprintf(stderr, "  fastsep_open: %d: %s\n", (int)st, fastsep_last_error(NULL));
    return s;
}

/* stems as one buffer (stem, frame, channel) and its pointers */
typedef struct {
    int n, channels;
    int64_t frames;
    float *data;
    float *ptr[16];
} Stems;

static int stems_alloc(Stems *st, int n, int64_t frames, int channels) {
    int i;
    st->n = n, st->frames = frames, st->channels = channels;
    st->data = (float *)calloc((size_t)(n * frames * channels) + 1, sizeof(float));
    for (i = 0; i < n && i < 16; ++i) st->ptr[i] = st->data + (size_t)(i * frames * channels);
    return st->data != NULL;
}

static int stems_equal(const Stems *a, const Stems *b) {
    return a->frames == b->frames && a->n == b->n &&
           memcmp(a->data, b->data, sizeof(float) * (size_t)(a->n * a->frames * a->channels)) == 0;
}

static int all_finite(const Stems *a) {
    int64_t i, n = (int64_t)a->n * a->frames * a->channels;
    for (i = 0; i < n; ++i)
        if (!isfinite(a->data[i])) return 0;
    return 1;
}

/* The song pushed in random blocks, pulling random amounts of what is available in between. */
static fastsep_status stream(fastsep_separator *s, const float *x, int64_t frames, int channels, Stems *out,
                             uint64_t seed) {
    int64_t in = 0, at = 0;
    int i, n = fastsep_stem_count(s), finished = 0;
    float *ptr[16];
    fastsep_status st = fastsep_reset(s);
    rng_state = seed;
    while (st == FASTSEP_OK) {
        int64_t avail;
        if (in < frames) {
            int64_t block = 1 + (int64_t)(rng() % (rng() % 4 == 0 ? 200000u : 5000u));
            if (block > frames - in) block = frames - in;
            st = fastsep_push(s, x + in * channels, block);
            in += block;
        } else {
            st = fastsep_finish(s);
            finished = 1;
        }
        if (st != FASTSEP_OK) break;
        avail = fastsep_available(s);
        if (avail < 0 || at + avail > out->frames) return FASTSEP_ERROR_INTERNAL;
        while (avail > 0 && st == FASTSEP_OK) {
            int64_t take = in < frames && rng() % 2 ? 1 + (int64_t)(rng() % (uint32_t)avail) : avail;
            for (i = 0; i < n; ++i) ptr[i] = out->ptr[i] + at * channels;
            st = fastsep_pull(s, ptr, take);
            at += take, avail -= take;
        }
        if (finished) break;
    }
    if (st == FASTSEP_OK && at != frames) {
        fprintf(stderr, "  streamed %lld frames for %lld\n", (long long)at, (long long)frames);
        return FASTSEP_ERROR_INTERNAL;
    }
    return st;
}

/* ------------------------------------------------------------------------------------------- tests */

static void test_version(void) {
    fastsep_options_init(NULL);
    CHECK(fastsep_abi_version() == FASTSEP_ABI_VERSION, "ABI version");
    CHECK(fastsep_version() != NULL && strlen(fastsep_version()) >= 5, "version string");
}

static void test_null_separator(void) {
    float x[4] = {0}, *stems[2] = {x, x};
    CHECK_FAILS(fastsep_push(NULL, x, 1), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK_FAILS(fastsep_finish(NULL), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK_FAILS(fastsep_pull(NULL, stems, 1), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK_FAILS(fastsep_reset(NULL), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK_FAILS(fastsep_separate(NULL, x, 1, stems), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK(fastsep_stem_count(NULL) == -1, "stem_count(NULL)");
    CHECK(fastsep_stem_name(NULL, 0) == NULL, "stem_name(NULL)");
    CHECK(fastsep_latency(NULL) == -1, "latency(NULL)");
    CHECK(fastsep_available(NULL) == -1, "available(NULL)");
    CHECK(fastsep_last_error(NULL) != NULL, "last_error(NULL)");
    fastsep_close(NULL);
}

static void expect_open_fails(const fastsep_options *o, fastsep_status status, const char *what) {
    fastsep_separator *s = (fastsep_separator *)&passed; /* not NULL: open must clear it */
    fastsep_status got = fastsep_open(o, &s);
    const char *msg = fastsep_last_error(NULL);
    CHECK(got == status, what);
    CHECK(s == NULL, what);
    CHECK(msg != NULL && strncmp(msg, "fastsep_open: ", 14) == 0 && strlen(msg) > 14, what);
    if (got != status) fprintf(stderr, "  %s: got %d: %s\n", what, (int)got, msg ? msg : "(null)");
    if (got == FASTSEP_OK) fastsep_close(s);
}

static void test_bad_options(void) {
    fastsep_options o;
    fastsep_separator *s = NULL;
    FILE *f;
    const char *not_onnx = "c_api_test_not_onnx.onnx", *engine = "c_api_test.engine";

    o = options_for(0, 0);
    CHECK_FAILS(fastsep_open(&o, NULL), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK_FAILS(fastsep_open(NULL, &s), FASTSEP_ERROR_ARGUMENT, NULL);
    CHECK(s == NULL, "open(NULL options) gives no separator");
    o.size = 0, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "size 0");
    o = options_for(0, 0), o.size = sizeof(o) - 4, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "size too small");
    o = options_for(0, 0), o.size = sizeof(o) + 8, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "size too large");
    o = options_for(0, 0), o.model = NULL, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "NULL model");
    o = options_for(0, 0), o.model = "", expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "empty model");
    o = options_for(0, 0), o.model = "/nonexistent/model.onnx";
    expect_open_fails(&o, FASTSEP_ERROR_MODEL, "missing model file");
    f = fopen(not_onnx, "wb");
    if (f) {
        fputs("this is not an ONNX model\n", f);
        fclose(f);
    }
    o = options_for(0, 0), o.model = not_onnx, expect_open_fails(&o, FASTSEP_ERROR_MODEL, "a file that is not ONNX");
    remove(not_onnx);
    f = fopen(engine, "wb");
    if (f) fclose(f);
    o = options_for(0, 0), o.model = engine, expect_open_fails(&o, FASTSEP_ERROR_DEVICE, "an engine on the CPU");
    remove(engine);
    o = options_for(0, 0), o.device = "tpu", expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "device tpu");
    o = options_for(0, 0), o.device = "gpu", expect_open_fails(&o, FASTSEP_ERROR_DEVICE, "device gpu");
    o = options_for(0, 0), o.precision = "fp16", expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "fp16 on the CPU");
    o = options_for(0, 0), o.precision = "int8", expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "precision int8");
    o = options_for(0, 0), o.threads = -1, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "threads -1");
    o = options_for(0, 3), expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "3 channels");
    o = options_for(0, -1), expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "-1 channels");
    o = options_for(-44100, 0), expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "negative rate");
    o = options_for(100, 0), expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "rate 100 Hz");
    o = options_for(0, 0), o.overlap = -0.1f, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "overlap -0.1");
    o = options_for(0, 0), o.overlap = 0.95f, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "overlap 0.95");
    o = options_for(0, 0), o.overlap = (float)NAN, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "overlap NaN");
    o = options_for(0, 0), o.full_band = 2, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "full_band 2");
    o = options_for(0, 0), o.segment_frames = 100, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "segment_frames 100");
    o = options_for(0, 0), o.segment_frames = -64, expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "segment_frames -64");
    o = options_for(0, 0), o.segment_frames = 1024;
    expect_open_fails(&o, FASTSEP_ERROR_ARGUMENT, "segment_frames past the model's T");
}

/* bad arguments, NaN, calls out of order and the way back, on one stereo 44.1 kHz separator */
static void test_errors_and_recovery(fastsep_separator *s, const float *song, int64_t frames) {
    float nan_block[2 * 64];
    float *big;
    float buf[2][2 * 16], *stems[2] = {buf[0], buf[1]}, *half_null[2] = {buf[0], NULL};
    int64_t latency = fastsep_latency(s), i;

    CHECK(fastsep_stem_count(s) == 2, "2 stems");
    CHECK(fastsep_stem_name(s, 0) && strcmp(fastsep_stem_name(s, 0), "vocals") == 0, "stem 0 is vocals");
    CHECK(fastsep_stem_name(s, 1) && strcmp(fastsep_stem_name(s, 1), "accompaniment") == 0, "stem 1");
    CHECK(fastsep_stem_name(s, 2) == NULL && fastsep_stem_name(s, -1) == NULL, "no stem past the count");
    CHECK(fastsep_last_error(s) != NULL && fastsep_last_error(s)[0] == '\0', "no error yet");

    CHECK_FAILS(fastsep_push(s, NULL, 10), FASTSEP_ERROR_ARGUMENT, s);
    CHECK_FAILS(fastsep_push(s, song, -1), FASTSEP_ERROR_ARGUMENT, s);
    CHECK(fastsep_push(s, NULL, 0) == FASTSEP_OK, "push of nothing");
    CHECK_FAILS(fastsep_pull(s, stems, -1), FASTSEP_ERROR_ARGUMENT, s);
    CHECK_FAILS(fastsep_pull(s, stems, 1), FASTSEP_ERROR_STATE, s); /* nothing available yet */
    CHECK(fastsep_pull(s, NULL, 0) == FASTSEP_OK, "pull of nothing");
    CHECK_FAILS(fastsep_separate(s, NULL, 10, stems), FASTSEP_ERROR_ARGUMENT, s);
    CHECK_FAILS(fastsep_separate(s, song, 10, NULL), FASTSEP_ERROR_ARGUMENT, s);
    CHECK_FAILS(fastsep_separate(s, song, 10, half_null), FASTSEP_ERROR_ARGUMENT, s);
    CHECK_FAILS(fastsep_separate(s, song, -5, stems), FASTSEP_ERROR_ARGUMENT, s);

    /* NaN and Inf: refused, nothing kept, the song goes on */
    for (i = 0; i < 128; ++i) nan_block[i] = 0.1f;
    nan_block[77] = (float)NAN;
    CHECK_FAILS(fastsep_push(s, nan_block, 64), FASTSEP_ERROR_INPUT, s);
    nan_block[77] = (float)INFINITY;
    CHECK_FAILS(fastsep_push(s, nan_block, 64), FASTSEP_ERROR_INPUT, s);
    CHECK_FAILS(fastsep_separate(s, nan_block, 64, stems), FASTSEP_ERROR_INPUT, s);

    /* latency: one frame short gives nothing, the latency gives the first frames */
    CHECK(latency > 0 && latency < frames, "latency within the song");
    CHECK(fastsep_reset(s) == FASTSEP_OK, "reset");
    CHECK(fastsep_push(s, song, latency - 1) == FASTSEP_OK, "push latency - 1");
    CHECK(fastsep_available(s) == 0, "nothing before the latency");
    CHECK(fastsep_push(s, song + 2 * (latency - 1), 1) == FASTSEP_OK, "push the latency's last frame");
    CHECK(fastsep_available(s) > 0, "output once the latency is in");
    CHECK_FAILS(fastsep_pull(s, half_null, 1), FASTSEP_ERROR_ARGUMENT, s);
    CHECK_FAILS(fastsep_pull(s, stems, fastsep_available(s) + 1), FASTSEP_ERROR_STATE, s);
    CHECK(fastsep_pull(s, stems, 16) == FASTSEP_OK, "pull after the errors");

    /* push after finish, pull past available */
    CHECK(fastsep_finish(s) == FASTSEP_OK, "finish");
    CHECK(fastsep_finish(s) == FASTSEP_OK, "finish twice");
    CHECK(fastsep_available(s) == latency - 16, "every pushed frame comes out");
    CHECK_FAILS(fastsep_push(s, song, 10), FASTSEP_ERROR_STATE, s);
    CHECK_FAILS(fastsep_pull(s, stems, latency), FASTSEP_ERROR_STATE, s);

    /* a failure inside the pipeline (samples whose spectrum overflows float32): only reset is accepted */
    big = (float *)malloc(sizeof(float) * 2 * (size_t)(latency + 1));
    if (big) {
        for (i = 0; i < 2 * (latency + 1); ++i) big[i] = (i % 2 ? 3e38f : -3e38f);
        CHECK(fastsep_reset(s) == FASTSEP_OK, "reset");
        CHECK_FAILS(fastsep_push(s, big, latency + 1), FASTSEP_ERROR_INPUT, s);
        CHECK_FAILS(fastsep_push(s, song, 10), FASTSEP_ERROR_STATE, s);
        CHECK_FAILS(fastsep_finish(s), FASTSEP_ERROR_STATE, s);
        free(big);
    }
    CHECK(fastsep_reset(s) == FASTSEP_OK, "reset after a failed song");
    CHECK(fastsep_push(s, song, 16) == FASTSEP_OK && fastsep_finish(s) == FASTSEP_OK, "a song after the reset");
    CHECK(fastsep_available(s) == 16 && fastsep_pull(s, stems, 16) == FASTSEP_OK, "its stems");
}

typedef struct {
    const float *song;
    int64_t frames;
    Stems out;
    fastsep_status status;
} Job;

static void *separate_job(void *arg) {
    Job *job = (Job *)arg;
    fastsep_options o = options_for(0, 0);
    fastsep_separator *s = NULL;
    job->status = fastsep_open(&o, &s);
    if (job->status == FASTSEP_OK) job->status = fastsep_separate(s, job->song, job->frames, job->out.ptr);
    fastsep_close(s);
    return NULL;
}

/* 40 s in random blocks = fastsep_separate, to the last bit; two separators on two threads = one */
static void test_streaming_and_threads(fastsep_separator *s, const float *song, int64_t frames) {
    Stems once, streamed;
    Job jobs[2];
    pthread_t threads[2];
    int k;
    if (!stems_alloc(&once, 2, frames, 2) || !stems_alloc(&streamed, 2, frames, 2)) {
        CHECK(0, "memory");
        return;
    }
    CHECK(fastsep_separate(s, song, frames, once.ptr) == FASTSEP_OK, "fastsep_separate of 40 s");
    CHECK(all_finite(&once), "finite stems");
    CHECK(fastsep_available(s) == 0, "separate pulls everything");
    CHECK(stream(s, song, frames, 2, &streamed, 1) == FASTSEP_OK, "streamed in random blocks");
    CHECK(stems_equal(&once, &streamed), "streamed = separate, bit for bit");
    memset(streamed.data, 0, sizeof(float) * (size_t)(2 * frames * 2));
    CHECK(stream(s, song, frames, 2, &streamed, 99) == FASTSEP_OK, "streamed in other random blocks");
    CHECK(stems_equal(&once, &streamed), "streamed again = separate, bit for bit");
    CHECK(fastsep_separate(s, song, frames, streamed.ptr) == FASTSEP_OK && stems_equal(&once, &streamed),
          "separate again after streaming gives the same stems");

    for (k = 0; k < 2; ++k) {
        jobs[k].song = song, jobs[k].frames = frames, jobs[k].status = FASTSEP_ERROR_INTERNAL;
        if (!stems_alloc(&jobs[k].out, 2, frames, 2)) return;
    }
    for (k = 0; k < 2; ++k) CHECK(pthread_create(&threads[k], NULL, separate_job, &jobs[k]) == 0, "a thread");
    for (k = 0; k < 2; ++k) pthread_join(threads[k], NULL);
    for (k = 0; k < 2; ++k) {
        CHECK(jobs[k].status == FASTSEP_OK, "separate on a thread");
        CHECK(stems_equal(&once, &jobs[k].out), "a separator on a thread = one separator");
        free(jobs[k].out.data);
    }
    free(once.data);
    free(streamed.data);
}

/* mono in: duplicated to stereo; mono stems: channel 0 */
static void test_mono(const float *song, int64_t frames) {
    fastsep_options o = options_for(0, 1);
    fastsep_separator *mono = open_or_null(&o), *stereo;
    float *x = (float *)malloc(sizeof(float) * (size_t)frames), *xx = (float *)malloc(sizeof(float) * 2 * frames);
    Stems m, st, streamed;
    int64_t t;
    CHECK(mono != NULL, "open mono");
    o = options_for(0, 2);
    stereo = open_or_null(&o);
    if (mono && stereo && x && xx && stems_alloc(&m, 2, frames, 1) && stems_alloc(&st, 2, frames, 2) &&
        stems_alloc(&streamed, 2, frames, 1)) {
        int i, same = 1;
        for (t = 0; t < frames; ++t) x[t] = song[2 * t], xx[2 * t] = xx[2 * t + 1] = song[2 * t];
        CHECK(fastsep_separate(mono, x, frames, m.ptr) == FASTSEP_OK, "separate mono");
        CHECK(fastsep_separate(stereo, xx, frames, st.ptr) == FASTSEP_OK, "separate duplicated stereo");
        for (i = 0; i < 2; ++i)
            for (t = 0; t < frames; ++t) same &= m.ptr[i][t] == st.ptr[i][2 * t];
        CHECK(same, "mono stems = channel 0 of the duplicated stereo's");
        CHECK(stream(mono, x, frames, 1, &streamed, 7) == FASTSEP_OK && stems_equal(&m, &streamed),
              "mono streamed = mono separate");
        free(m.data), free(st.data), free(streamed.data);
    }
    free(x), free(xx);
    fastsep_close(mono);
    fastsep_close(stereo);
}

/* 48 kHz (stereo and mono): resampled in and out, as many frames out as in, streaming = separate */
static void test_other_rate(int channels) {
    fastsep_options o = options_for(48000, channels);
    fastsep_separator *s = NULL;
    fastsep_status st = fastsep_open(&o, &s);
    int64_t frames = 48000 * 20 + 123, latency;
    float *song = make_song(frames, channels, 48000);
    Stems once, streamed;
    if (!have_resampler) {
        CHECK(st == FASTSEP_ERROR_ARGUMENT, "48 kHz refused without the resampler");
        free(song);
        return;
    }
    CHECK(st == FASTSEP_OK, "open at 48 kHz");
    if (st != FASTSEP_OK || !song || !stems_alloc(&once, 2, frames, channels) ||
        !stems_alloc(&streamed, 2, frames, channels)) {
        fprintf(stderr, "  %s\n", fastsep_last_error(NULL));
        fastsep_close(s);
        free(song);
        return;
    }
    latency = fastsep_latency(s);
    CHECK(latency > 0 && latency < frames, "latency at 48 kHz");
    CHECK(fastsep_separate(s, song, frames, once.ptr) == FASTSEP_OK, "separate at 48 kHz");
    CHECK(all_finite(&once), "finite stems at 48 kHz");
    CHECK(stream(s, song, frames, channels, &streamed, 3) == FASTSEP_OK && stems_equal(&once, &streamed),
          "48 kHz streamed = separate");
    CHECK(fastsep_reset(s) == FASTSEP_OK && fastsep_push(s, song, latency) == FASTSEP_OK &&
              fastsep_available(s) > 0,
          "output once the latency is in at 48 kHz");
    free(once.data), free(streamed.data), free(song);
    fastsep_close(s);
}

/* the options beyond Spleeter: shorter segments (lower latency), overlap, full band */
static void test_segments_and_quality(const float *song, int64_t frames, int64_t latency_512) {
    fastsep_options o = options_for(0, 0);
    fastsep_separator *s;
    Stems once, streamed;
    int64_t n = frames < 44100 * 20 ? frames : 44100 * 20;
    if (!stems_alloc(&once, 2, n, 2) || !stems_alloc(&streamed, 2, n, 2)) return;
    o.segment_frames = 128;
    s = open_or_null(&o);
    CHECK(s != NULL, "open with segment_frames 128");
    if (s) {
        CHECK(fastsep_latency(s) < latency_512 / 2, "128-frame segments: a quarter of the latency");
        CHECK(fastsep_separate(s, song, n, once.ptr) == FASTSEP_OK && all_finite(&once), "separate, T = 128");
        CHECK(stream(s, song, n, 2, &streamed, 5) == FASTSEP_OK && stems_equal(&once, &streamed),
              "T = 128 streamed = separate");
        fastsep_close(s);
    }
    o = options_for(0, 0);
    o.overlap = 0.25f;
    o.full_band = 1;
    s = open_or_null(&o);
    CHECK(s != NULL, "open with overlap 0.25 and full band");
    if (s) {
        CHECK(fastsep_separate(s, song, n, once.ptr) == FASTSEP_OK && all_finite(&once), "separate, overlap");
        CHECK(stream(s, song, n, 2, &streamed, 6) == FASTSEP_OK && stems_equal(&once, &streamed),
              "overlap streamed = separate");
        fastsep_close(s);
    }
    free(once.data), free(streamed.data);
}

/* ------------------------------------------------------------------------------------------- file mode */

static int separate_file(int argc, char **argv) {
    fastsep_options o = options_for(0, 0);
    const char *in_path = argv[3], *out_path = argv[4];
    long blocks_seed = -1;
    int i, n;
    FILE *f;
    long size;
    float *x;
    int64_t frames;
    Stems out;
    fastsep_separator *s;
    fastsep_status st;
    for (i = 5; i < argc; ++i) {
        if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) o.sample_rate = atoi(argv[++i]);
        else if (strcmp(argv[i], "--channels") == 0 && i + 1 < argc) o.channels = atoi(argv[++i]);
        else if (strcmp(argv[i], "--overlap") == 0 && i + 1 < argc) o.overlap = (float)atof(argv[++i]);
        else if (strcmp(argv[i], "--full-band") == 0) o.full_band = 1;
        else if (strcmp(argv[i], "--segment-frames") == 0 && i + 1 < argc) o.segment_frames = atoi(argv[++i]);
        else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) blocks_seed = atol(argv[++i]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    f = fopen(in_path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot read %s\n", in_path);
        return 2;
    }
    n = o.channels ? o.channels : 2;
    frames = size / (long)(sizeof(float) * n);
    x = (float *)malloc(sizeof(float) * (size_t)(frames * n) + 1);
    if (!x || fread(x, sizeof(float), (size_t)(frames * n), f) != (size_t)(frames * n)) return 2;
    fclose(f);
    st = fastsep_open(&o, &s);
    if (st != FASTSEP_OK) {
        fprintf(stderr, "fastsep_open: %s\n", fastsep_last_error(NULL));
        return 1;
    }
    if (!stems_alloc(&out, fastsep_stem_count(s), frames, n)) return 2;
    st = blocks_seed >= 0 ? stream(s, x, frames, n, &out, (uint64_t)blocks_seed)
                          : fastsep_separate(s, x, frames, out.ptr);
    if (st != FASTSEP_OK) {
        fprintf(stderr, "separation: %s\n", fastsep_last_error(s));
        return 1;
    }
    f = fopen(out_path, "wb");
    if (!f || fwrite(out.data, sizeof(float), (size_t)(out.n * frames * n), f) != (size_t)(out.n * frames * n)) return 2;
    fclose(f);
    printf("latency %lld\n", (long long)fastsep_latency(s));
    fastsep_close(s);
    free(x), free(out.data);
    return 0;
}

int main(int argc, char **argv) {
    fastsep_options o;
    fastsep_separator *s, *probe = NULL;
    int64_t frames = 44100 * 40 + 1001; /* a 40 s song, not a multiple of anything */
    float *song;
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.onnx [--separate IN.f32 OUT.f32 [options]]\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    if (argc >= 5 && strcmp(argv[2], "--separate") == 0) return separate_file(argc, argv);

    o = options_for(48000, 2);
    if (fastsep_open(&o, &probe) == FASTSEP_OK) have_resampler = 1;
    fastsep_close(probe);
    printf("libfastsep %s, resampler %s\n", fastsep_version(), have_resampler ? "yes" : "no");

    test_version();
    test_null_separator();
    test_bad_options();
    song = make_song(frames, 2, 44100);
    o = options_for(0, 0);
    s = open_or_null(&o);
    CHECK(s != NULL && song != NULL, "open the model");
    if (s && song) {
        int64_t latency = fastsep_latency(s);
        printf("latency %lld frames\n", (long long)latency);
        test_errors_and_recovery(s, song, frames);
        test_streaming_and_threads(s, song, frames);
        test_mono(song, 44100 * 15);
        test_segments_and_quality(song, frames, latency);
        test_other_rate(2);
        test_other_rate(1);
    }
    fastsep_close(s);
    free(song);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
