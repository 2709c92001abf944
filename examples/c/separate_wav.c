/* separate_wav: a WAV file in, one WAV file per stem out, through fastsep's C API (docs/c_api.md).
 *
 *   separate_wav MODEL.onnx IN.wav OUTDIR      (OUTDIR must exist; writes OUTDIR/<stem>.wav)
 *
 * MODEL.onnx is written by `fastsep export-onnx` (it carries the model's config). IN.wav: 16-bit PCM or 32-bit
 * float, mono or stereo, any sample rate (fastsep resamples to the model's rate and back). The stems come out as
 * 32-bit float WAV with the input's rate and channel count, so nothing is clipped or rounded.
 * Standard C99 only besides fastsep.h; the whole song is held in memory and separated by one fastsep_separate call
 * (examples/cpp/stream_live.cpp shows the streaming calls).
 *
 * Build: cmake with find_package(fastsep CONFIG) (CMakeLists.txt here), or
 *   cc -std=c99 separate_wav.c -o separate_wav $(pkg-config --cflags --libs fastsep)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastsep.h"

static uint32_t get_u16(const unsigned char *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get_u32(const unsigned char *p) { return get_u16(p) | (get_u16(p + 2) << 16); }

static void put_u16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)(v & 0xff); p[1] = (unsigned char)((v >> 8) & 0xff); }
static void put_u32(unsigned char *p, uint32_t v) { put_u16(p, v & 0xffff); put_u16(p + 2, v >> 16); }

/* The whole file, or NULL. */
static unsigned char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = (unsigned char *)malloc((size_t)*size);
        if (data && fread(data, 1, (size_t)*size, f) != (size_t)*size) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}

/* Parses a RIFF/WAVE file into interleaved floats (16-bit PCM scaled by 1/32768). Returns NULL with a message. */
static float *read_wav(const char *path, int *rate, int *channels, int64_t *frames, const char **why) {
    long size = 0;
    unsigned char *data = read_file(path, &size);
    unsigned char *fmt = NULL, *pcm = NULL;
    uint32_t pcm_bytes = 0, format = 0, bits = 0;
    long pos = 12;
    float *out = NULL;
    int64_t i, n;
    *why = "cannot read the file";
    if (!data) return NULL;
    *why = "not a RIFF/WAVE file";
    if (size < 12 || memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WAVE", 4) != 0) goto done;
    while (pos + 8 <= size) { /* chunks: 4-byte id, 4-byte size, data padded to an even size */
        uint32_t chunk = get_u32(data + pos + 4);
        if ((uint32_t)(size - pos - 8) < chunk) chunk = (uint32_t)(size - pos - 8); /* a truncated last chunk */
        if (memcmp(data + pos, "fmt ", 4) == 0 && chunk >= 16) fmt = data + pos + 8;
        if (memcmp(data + pos, "data", 4) == 0) { pcm = data + pos + 8; pcm_bytes = chunk; }
        pos += 8 + (long)chunk + (long)(chunk & 1);
    }
    *why = "no fmt or data chunk";
    if (!fmt || !pcm) goto done;
    format = get_u16(fmt);
    if (format == 0xFFFE && get_u16(fmt + 16) >= 22) format = get_u16(fmt + 24); /* WAVE_FORMAT_EXTENSIBLE */
    *channels = (int)get_u16(fmt + 2);
    *rate = (int)get_u32(fmt + 4);
    bits = get_u16(fmt + 14);
    *why = "only 16-bit PCM and 32-bit float WAV files are read";
    if (!((format == 1 && bits == 16) || (format == 3 && bits == 32))) goto done;
    *why = "only mono and stereo files are read";
    if (*channels != 1 && *channels != 2) goto done;
    n = (int64_t)(pcm_bytes / (bits / 8));
    *frames = n / *channels;
    *why = "the file holds no samples";
    if (*frames == 0) goto done;
    *why = "out of memory";
    out = (float *)malloc((size_t)n * sizeof(float));
    if (!out) goto done;
    for (i = 0; i < n; ++i) {
        if (bits == 16) {
            int32_t v = (int32_t)get_u16(pcm + 2 * i);
            out[i] = (float)(v >= 32768 ? v - 65536 : v) / 32768.0f;
        } else {
            uint32_t v = get_u32(pcm + 4 * i);
            memcpy(&out[i], &v, sizeof v); /* IEEE 754 single, as the file says */
        }
    }
done:
    free(data);
    return out;
}

/* Writes interleaved floats as a 32-bit float WAV file. Returns 0 on success. */
static int write_wav(const char *path, const float *x, int64_t frames, int rate, int channels) {
    unsigned char head[58];
    uint32_t data_bytes = (uint32_t)(frames * channels * 4);
    int64_t i;
    FILE *f;
    if (frames * channels * 4 > 0xFFFFFFF0LL - 58) return -1; /* beyond what a RIFF size can say */
    memcpy(head, "RIFF", 4);
    put_u32(head + 4, 50 + data_bytes);
    memcpy(head + 8, "WAVEfmt ", 8);
    put_u32(head + 16, 18);
    put_u16(head + 20, 3); /* WAVE_FORMAT_IEEE_FLOAT */
    put_u16(head + 22, (uint32_t)channels);
    put_u32(head + 24, (uint32_t)rate);
    put_u32(head + 28, (uint32_t)rate * (uint32_t)channels * 4);
    put_u16(head + 32, (uint32_t)channels * 4);
    put_u16(head + 34, 32);
    put_u16(head + 36, 0);
    memcpy(head + 38, "fact", 4); /* required for non-PCM formats */
    put_u32(head + 42, 4);
    put_u32(head + 46, (uint32_t)frames);
    memcpy(head + 50, "data", 4);
    put_u32(head + 54, data_bytes);
    f = fopen(path, "wb");
    if (!f) return -1;
    if (fwrite(head, 1, sizeof head, f) != sizeof head) { fclose(f); return -1; }
    for (i = 0; i < frames * channels; ++i) {
        unsigned char b[4];
        uint32_t v;
        memcpy(&v, &x[i], sizeof v);
        put_u32(b, v);
        if (fwrite(b, 1, 4, f) != 4) { fclose(f); return -1; }
    }
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    fastsep_options options;
    fastsep_separator *separator = NULL;
    float **stems = NULL;
    float *input;
    const char *why = NULL;
    int rate = 0, channels = 0, rc = 1;
    int32_t count, i;
    int64_t frames = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.onnx IN.wav OUTDIR\n", argv[0]);
        return 2;
    }
    input = read_wav(argv[2], &rate, &channels, &frames, &why);
    if (!input) {
        fprintf(stderr, "%s: %s\n", argv[2], why);
        return 1;
    }

    fastsep_options_init(&options); /* defaults: cpu, fp32 (Spleeter-exact), every core */
    options.model = argv[1];
    options.sample_rate = rate;
    options.channels = channels;
    if (fastsep_open(&options, &separator) != FASTSEP_OK) {
        fprintf(stderr, "%s\n", fastsep_last_error(NULL)); /* NULL: this thread's last failed open */
        free(input);
        return 1;
    }

    count = fastsep_stem_count(separator);
    stems = (float **)calloc((size_t)count, sizeof(float *));
    for (i = 0; stems && i < count; ++i) {
        stems[i] = (float *)malloc((size_t)(frames * channels) * sizeof(float));
        if (!stems[i]) break;
    }
    if (!stems || i < count) {
        fprintf(stderr, "out of memory\n");
    } else if (fastsep_separate(separator, input, frames, stems) != FASTSEP_OK) {
        fprintf(stderr, "%s\n", fastsep_last_error(separator));
    } else {
        rc = 0;
        for (i = 0; i < count; ++i) {
            const char *name = fastsep_stem_name(separator, i);
            size_t length = strlen(argv[3]) + strlen(name) + 6;
            char *path = (char *)malloc(length);
            if (!path) { rc = 1; break; }
            snprintf(path, length, "%s/%s.wav", argv[3], name);
            if (write_wav(path, stems[i], frames, rate, channels) != 0) {
                fprintf(stderr, "%s: cannot write\n", path);
                rc = 1;
            } else {
                printf("%s\n", path);
            }
            free(path);
        }
    }
    for (i = 0; stems && i < count; ++i) free(stems[i]);
    free(stems);
    free(input);
    fastsep_close(separator);
    return rc;
}
