/* fastsep's C API (issue 18): Spleeter source separation from C or C++, no Python, streaming push/pull.
 *
 * A separator holds one loaded model. Audio goes in as interleaved float32 frames (`channels` samples each) at
 * `sample_rate`, and each stem comes out the same way, at the same rate and channel count: mono input is duplicated
 * to stereo on the way in (as Spleeter does) and mono stems are the model's channel 0.
 *
 * Threading: one thread at a time per separator (calls on one separator must not overlap); different separators
 *   may be used on different threads at once.
 * Ownership: the caller owns every buffer it passes; fastsep reads or writes them only during the call. Strings
 *   returned by fastsep (version, stem names, messages) belong to fastsep: a stem name lives as long as its
 *   separator, a message until the next call on the same separator (or, for NULL, the next failing call without one
 *   on the same thread).
 * Errors: every function returns a status (or a documented sentinel) and never aborts, exits or lets a C++
 *   exception out; fastsep_last_error says why in one line. A separator stays usable after any error once reset.
 * Latency: fastsep_latency() frames must be pushed before the first frame can be pulled (without finish).
 * The reference, with the packaging: docs/c_api.md; the pipeline underneath: docs/architecture.md §4.7. */
#ifndef FASTSEP_H
#define FASTSEP_H

#include <stdint.h>

#if defined(_WIN32)
#if defined(FASTSEP_BUILDING)
#define FASTSEP_API __declspec(dllexport)
#else
#define FASTSEP_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define FASTSEP_API __attribute__((visibility("default")))
#else
#define FASTSEP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define FASTSEP_ABI_VERSION 1

/* One loaded model and the state of the song in flight; one thread at a time. */
typedef struct fastsep_separator fastsep_separator;

typedef enum fastsep_status {
    FASTSEP_OK = 0,
    FASTSEP_ERROR_ARGUMENT, /* a bad argument or option (NULL pointer, negative count, value out of range) */
    FASTSEP_ERROR_MODEL,    /* the model file cannot be read, is not a fastsep export, or does not fit its config */
    FASTSEP_ERROR_INPUT,    /* audio that cannot be separated: NaN/Inf samples, or samples far beyond full scale */
    FASTSEP_ERROR_STATE,    /* a call out of order: push after finish, pull past available, any call after a failure
                               until fastsep_reset */
    FASTSEP_ERROR_DEVICE,   /* the device asked for is not available in this build or on this machine */
    FASTSEP_ERROR_MEMORY,   /* out of memory */
    FASTSEP_ERROR_INTERNAL  /* anything else (a bug: please report it with the message) */
} fastsep_status;

typedef struct fastsep_options {
    uint32_t size;         /* sizeof(fastsep_options), set by fastsep_options_init: the struct may grow */
    const char *model;     /* a model file written by fastsep: `fastsep export-onnx` output (it carries the model's
                              config), or a `.engine` for the GPU */
    const char *device;    /* "cpu" (default; NULL is the default), "gpu", "auto" */
    const char *precision; /* "fp32" (default, Spleeter-exact; NULL is the default), "bf16" (CPU with native bf16),
                              "fp16" (GPU) */
    int32_t threads;       /* 0: every core (the network's and the DSP's threads) */
    int32_t sample_rate;   /* of what is pushed and pulled; 0 = 44100; other rates are resampled in and out */
    int32_t channels;      /* 1 or 2, interleaved; stems come out with the same count; 0 = 2 */
    float overlap;         /* 0 = Spleeter-exact; in [0, 0.9], as Separator(overlap=) */
    int32_t full_band;     /* 0 or 1, as Separator(full_band=) */
    int32_t segment_frames; /* 0 = the model's T (512, 11.9 s); 64/128/256 (a multiple of 64 up to T) for lower
                               latency */
} fastsep_options;

/* Fill *options with the defaults and its size (NULL: nothing happens). Call it before setting any field. */
FASTSEP_API void fastsep_options_init(fastsep_options *options);
/* FASTSEP_ABI_VERSION of the library that is loaded (compare with the header's). */
FASTSEP_API uint32_t fastsep_abi_version(void);
/* The library's version, "major.minor.patch" (a static string). */
FASTSEP_API const char *fastsep_version(void);

/* Load the model and get a separator ready for the first song. On failure *out is NULL (when out is not NULL) and
 * fastsep_last_error(NULL) says why. Loading compiles the network: it takes a while; reuse the separator. */
FASTSEP_API fastsep_status fastsep_open(const fastsep_options *options, fastsep_separator **out);
/* Free the separator and everything it holds. NULL is allowed. */
FASTSEP_API void fastsep_close(fastsep_separator *separator);

/* Stems of the model (2 for 2stems), -1 for NULL. */
FASTSEP_API int32_t fastsep_stem_count(const fastsep_separator *separator);
/* Name of stem `index` ("vocals", ...), in the order stems are pulled; NULL past the count (or for NULL). */
FASTSEP_API const char *fastsep_stem_name(const fastsep_separator *separator, int32_t index);
/* Frames (at the caller's rate) pushed before the first can come out without fastsep_finish: the pipeline's chunk of
 * segments (about 12 s with T = 512), plus the resampler's look-ahead at other rates. -1 for NULL. */
FASTSEP_API int64_t fastsep_latency(const fastsep_separator *separator);

/* Append `count` frames (count * channels floats) to the song. NaN/Inf samples: FASTSEP_ERROR_INPUT, and nothing
 * of the block is kept. After fastsep_finish: FASTSEP_ERROR_STATE. Runs the chunks the new frames complete (so it
 * may take a while). frames may be NULL only when count is 0. */
FASTSEP_API fastsep_status fastsep_push(fastsep_separator *separator, const float *frames, int64_t count);
/* End of the song: the rest becomes available. Calling it again is allowed (nothing happens). */
FASTSEP_API fastsep_status fastsep_finish(fastsep_separator *separator);
/* Frames ready to pull, the same for every stem; -1 for NULL. After fastsep_finish, once everything is pulled, the
 * stems hold exactly as many frames as were pushed. */
FASTSEP_API int64_t fastsep_available(const fastsep_separator *separator);
/* Take the next `count` <= available frames of every stem: stems[i] receives count * channels floats of stem i
 * (fastsep_stem_count pointers). count past available: FASTSEP_ERROR_STATE. stems may be NULL only when count
 * is 0. */
FASTSEP_API fastsep_status fastsep_pull(fastsep_separator *separator, float *const *stems, int64_t count);
/* Forget the song (also the way out of an error): the next push starts the next song; the model stays loaded. */
FASTSEP_API fastsep_status fastsep_reset(fastsep_separator *separator);
/* One whole song in one call: reset + push + finish + pull of exactly `count` frames into stems[i] (count *
 * channels floats each). The same stems as streaming the song in any blocks, to the last bit. */
FASTSEP_API fastsep_status fastsep_separate(fastsep_separator *separator, const float *frames, int64_t count,
                                            float *const *stems);

/* Why the last failing call on `separator` failed, one line ("" if none failed). NULL separator: the last failed
 * fastsep_open on this thread (or the last call made with a NULL separator). Never NULL. */
FASTSEP_API const char *fastsep_last_error(const fastsep_separator *separator);

#ifdef __cplusplus
}
#endif

#endif /* FASTSEP_H */
