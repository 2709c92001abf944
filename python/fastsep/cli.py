"""The ``fastsep`` command: separate | catalogue | download | convert | export-onnx | evaluate | build | bench | sdk.

Every error the user can cause is a FastsepError printed as one line (no traceback, ``--verbose`` adds it).
Exit status: 0 success, 1 some inputs failed, 2 bad usage or setup (nothing was done), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Optional

from . import __version__
from .console import Console, bar, download_progress, fmt_seconds
from .errors import FastsepError, MissingDependencyError, UsageError
from .models.precision import PRECISIONS, STORED
from .outputs import (DEFAULT_FORMAT, check_encoding, check_writable, missing_folders,
                      plan_outputs, precheck_output, remove_empty)
from .quality_options import RECOMMENDED_OVERLAP

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# --------------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastsep",
        description="Spleeter-exact music source separation, fast.",
        epilog="Run 'fastsep COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"fastsep {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show tracebacks of unexpected errors")
    common.add_argument("-q", "--quiet", action="store_true", help="print errors and warnings only")

    s = sub.add_parser("separate", parents=[common], help="separate audio files into stems",
                       description="Separate audio files into stems (the model is loaded once for all files).")
    s.add_argument("files", nargs="*", metavar="FILES", help="audio or video files (anything FFmpeg decodes)")
    s.add_argument("-i", "--inputs", dest="deprecated_inputs", nargs="+", action="extend", default=[],
                   metavar="FILE", help="the same as FILES (spleeter 2.0's way to name inputs)")
    s.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems",
                   help="stock model (2stems, 4stems, 5stems, *-16kHz, optional 'spleeter:' prefix), a Spleeter "
                        "checkpoint folder, a .safetensors or .onnx file (default: 2stems)")
    s.add_argument("--config", default=None, help="stock config name or Spleeter JSON for a custom checkpoint")
    s.add_argument("-o", "--output_path", "--output-path", dest="output_path", default="separated_audio",
                   help="output folder (default: ./separated_audio)")
    s.add_argument("-f", "--filename_format", "--filename-format", dest="filename_format", default=DEFAULT_FORMAT,
                   help="output path under the output folder; fields {filename}, {foldername}, {instrument}, "
                        "{codec} (default: %(default)s)")
    s.add_argument("-c", "--codec", default="wav", help="wav, flac, mp3, ogg, opus, m4a or wma (default: wav)")
    s.add_argument("-b", "--bitrate", "--birate", dest="bitrate", default="128k",
                   help="bitrate of lossy codecs (default: 128k)")
    s.add_argument("--pcm", default="s16", choices=("s16", "s24", "f32"),
                   help="wav sample format: 16-bit, 24-bit or 32-bit float (default: s16, as spleeter); flac is "
                        "16-bit for s16, else 24-bit")
    s.add_argument("-s", "--offset", type=float, default=0.0, help="start offset in seconds (default: 0)")
    s.add_argument("-d", "--duration", type=float, default=None,
                   help="seconds to separate from the offset (default: the whole file; no 10-minute cut)")
    s.add_argument("-m", "--mwf", action="store_true",
                   help="multichannel Wiener filter instead of ratio masks, as spleeter --mwf (CPU pipeline; "
                        "spills the network's estimates to unnamed temporary files in the output folder)")
    s.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="sample rate of the stems (default: each input's own)")
    s.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="files in flight, each decoding and encoding in its own threads (default: 1 on the CPU, "
                        "where the network uses every core; up to 4 on a GPU)")
    _quality_options(s)
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _backend_options(s)
    _ignored_spleeter_options(s)

    d = sub.add_parser("download", parents=[common], help="download pretrained models",
                       description="Fetch Spleeter's official release archive, check its sha256 and unpack it "
                                   "into the model cache.")
    d.add_argument("names", nargs="+", metavar="NAME", help="2stems, 4stems or 5stems")
    d.add_argument("--force", action="store_true", help="download again even if present")
    d.add_argument("--archive", default=None, metavar="FILE",
                   help="install from a local NAME.tar.gz instead of downloading (sha256 is still checked)")

    c = sub.add_parser("convert", parents=[common], help="convert a model to a fastsep .safetensors file")
    c.add_argument("model", help="stock name, Spleeter checkpoint folder or model file")
    c.add_argument("output", help="output .safetensors file")
    c.add_argument("--config", default=None, help="stock config name or Spleeter JSON")

    e = sub.add_parser("export-onnx", parents=[common], help="export a model's U-Nets as one ONNX file")
    e.add_argument("model", help="stock name, Spleeter checkpoint folder or .safetensors file")
    e.add_argument("output", help="output .onnx file")
    e.add_argument("--precision", default="fp32", choices=STORED, help="weights precision")
    e.add_argument("--config", default=None, help="stock config name or Spleeter JSON")

    v = sub.add_parser("evaluate", parents=[common], help="SDR/SIR/SAR/ISR (museval, BSSEval v4) on tracks",
                       description="Separate tracks that have reference stems and score them with museval "
                                   "(BSSEval v4, 1 s frames): median over frames per track, then median over "
                                   "tracks, as 'spleeter evaluate' reports.")
    v.add_argument("inputs", nargs="*", metavar="PATH",
                   help="musdb folder (<track>/mixture.wav + <stem>.wav, or a test/ subfolder), one track folder, "
                        "or .stem.mp4 files (streams: mix, drums, bass, other, vocals)")
    v.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems", help="model (default 2stems)")
    v.add_argument("--config", default=None, help="stock config name or Spleeter JSON")
    v.add_argument("--backend", default="auto", help="network runner (default: auto)")
    v.add_argument("-o", "--output_path", "--output-path", dest="output_path", default=None,
                   help="also write the estimates here as <track>/<instrument>.wav (float)")
    v.add_argument("--json", default=None, metavar="FILE", help="write per-track and aggregate scores as JSON")
    v.add_argument("-d", "--duration", type=float, default=None, help="evaluate only the first seconds of each track")
    v.add_argument("--mus_dir", default=None, metavar="MUSDB_DIR", help="a musdb folder (as PATH; spleeter's option)")
    v.add_argument("-m", "--mwf", action="store_true", help="multichannel Wiener filter, as spleeter --mwf")
    _ignored_spleeter_options(v)
    _quality_options(v)

    b = sub.add_parser("build", parents=[common], help="build a TensorRT engine for the GPU pipeline",
                       description="Compile a model's U-Nets into a TensorRT engine file that holds its config, so "
                                   "that Separator('x.engine') needs nothing else. Uses tensorrt where installed, "
                                   "else tensorrt_rtx (pip install 'fastsep[trt]'), which also builds on a CPU.")
    b.add_argument("model", help="stock name, Spleeter checkpoint folder, .safetensors or fastsep .onnx")
    b.add_argument("-o", "--output", required=True, help="engine file to write")
    b.add_argument("--precision", default="fp16", choices=STORED, help="default: fp16")
    b.add_argument("--batch", default="1:4:8", metavar="MIN:OPT:MAX",
                   help="optimisation profile over segments per call (default 1:4:8)")
    b.add_argument("--config", default=None, help="stock config name or Spleeter JSON")
    b.add_argument("--flavour", default=None, choices=("tensorrt", "tensorrt_rtx"),
                   help="default: whichever is installed")
    b.add_argument("--targets", nargs="+", default=None, metavar="SM",
                   help="TensorRT-RTX compute capabilities, e.g. SM89 SM120 (default: the GPU present, if any)")

    m = sub.add_parser("bench", parents=[common], help="time Separator.run (steady state) on generated audio",
                       description="Load a model once, separate one warm-up song, then time --runs songs of "
                                   "--seconds of noise-like audio and print x real-time. For the full GPU grid "
                                   "see benchmarks/gpu_throughput.py; for spleeter side by side, "
                                   "benchmarks/cpu_vs_spleeter.py.")
    m.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems", help="model (default 2stems)")
    m.add_argument("--config", default=None, help="stock config name or Spleeter JSON")
    _backend_options(m)
    m.add_argument("--batch-segments", type=int, default=None, help="segments per network call")
    m.add_argument("--seconds", type=float, default=60.0, help="length of each song (default 60)")
    m.add_argument("--runs", type=int, default=3, help="timed songs (default 3)")

    from .catalogue import add_arguments as catalogue_arguments

    k = sub.add_parser("catalogue", parents=[common], help="separate a catalogue of tracks on Ray workers, resumably",
                       description="Separate folders, globs or manifests of tracks with Ray workers (each holds one "
                                   "model): complete tracks are skipped on a rerun, bad ones are reported in "
                                   "OUT/_fastsep_report.parquet. pip install 'fastsep[ray]'.")
    catalogue_arguments(k)
    _backend_options(k)

    sub.add_parser("backends", parents=[common], help="list the network backends and what runs on this machine",
                   description="Every registered backend: where it runs, its precisions, and whether it is installed "
                               "here (else the extra to install).")

    sk = sub.add_parser("sdk", parents=[common], help="where the C API's header, library, CMake and pkg-config files are",
                       description="Print a folder of the C SDK installed with this package (docs/c_api.md): "
                                   "cmake -DCMAKE_PREFIX_PATH=\"$(fastsep sdk --cmake-dir)\" ..., or "
                                   "PKG_CONFIG_PATH=\"$(fastsep sdk --pkg-config-dir)\" pkg-config --cflags --libs "
                                   "fastsep.")
    where = sk.add_mutually_exclusive_group(required=True)
    for flag, what in SDK_DIRS.items():
        where.add_argument(f"--{flag}", dest="sdk_dir", action="store_const", const=flag, help=what[2])
    return p


def _quality_options(parser) -> None:
    """--overlap and --full-band: beyond spleeter's output (docs/spec.md §12)."""
    parser.add_argument("--overlap", type=float, nargs="?", const=RECOMMENDED_OVERLAP, default=0.0, metavar="X",
                        help="beyond spleeter: segments overlap by the fraction X (0 to 0.9; alone: "
                             f"{RECOMMENDED_OVERLAP}) and are cross-faded, so no seam remains every 11.9 s; network "
                             "time x 1/(1-X)")
    parser.add_argument("--full-band", action="store_true",
                        help="beyond spleeter: keep the band above the model's 11 kHz (16.5 kHz for -16kHz), so "
                             "the stems sum to the input")


def _backend_options(parser) -> None:
    """--backend and --precision, from the backend registry."""
    from . import backends

    parser.add_argument("--backend", default="auto", choices=backends.names(),
                        help="network runner: auto (an .engine runs on TensorRT, anything else on the fastest exact "
                             "CPU backend installed) or one of " + ", ".join(backends.REGISTRY)
                             + " ('fastsep backends' lists them)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="network precision, as the backend offers (default: its first; fp32 is Spleeter-exact)")


def _ignored_spleeter_options(parser) -> None:
    """spleeter 2.x options that have nothing to choose in fastsep: accepted, so that its scripts run unchanged."""
    parser.add_argument("-a", "--adapter", default=None, help="ignored (spleeter's audio I/O class)")
    parser.add_argument("-B", "--stft-backend", dest="stft_backend", default=None,
                        choices=("auto", "tensorflow", "librosa"), help="ignored (spleeter 2.0-2.3's STFT choice)")


IGNORED_NOTES = {
    "adapter": "-a/--adapter is ignored: fastsep reads and writes audio with its own decoder and encoder (FFmpeg "
               "inside PyAV), and spleeter's adapter classes do not run here",
    "stft_backend": "-B/--stft-backend is ignored: fastsep has one STFT, which computes what spleeter's TensorFlow "
                    "STFT computes (--backend chooses where the network runs)",
}


def apply_spleeter_options(args, con: Console) -> None:
    """spleeter 2.0-2.4's ways to name inputs (-i/--inputs, --mus_dir) join the arguments; one line per option
    that is accepted and ignored."""
    if args.command == "separate":
        args.files = args.files + args.deprecated_inputs
        if not args.files:
            raise UsageError("separate: give the audio files to separate (FILES)")
    if args.command == "evaluate":
        args.inputs = args.inputs + ([args.mus_dir] if args.mus_dir else [])
        if not args.inputs:
            raise UsageError("evaluate: give a musdb folder, track folders or .stem.mp4 files (PATH or --mus_dir)")
    for option, note in IGNORED_NOTES.items():
        if getattr(args, option, None) is not None:
            con.print(f"note: {note}")


def cmd_backends(args, con: Console) -> int:
    from . import backends, native

    gpu = native.unavailable_reason()
    print(f"GPU pipeline: {'available' if gpu is None else gpu}")
    for row in backends.describe():
        state = "installed" if row["installed"] else f"not installed: pip install 'fastsep[{row['extra']}]'"
        print(f"{row['name']:12} {'/'.join(row['devices']):9} {', '.join(row['precisions']):11} {state}")
        print(f"{'':12} {row['summary']}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------- separate


def cmd_separate(args, con: Console) -> int:
    return SeparateRun(args, con).run()


class SeparateRun:
    """`fastsep separate` in named steps: check the options, plan every output, load the model once, separate the
    files (decode -> separate -> encode, streaming, `jobs` files in flight), report.

    A bad file costs one error line and the batch goes on (exit 1 if any failed); existing outputs are kept
    unless --overwrite; an interrupt discards every unfinished stem (exit 130)."""

    def __init__(self, args, con: Console):
        self.args, self.con = args, con
        self.out_dir = pathlib.Path(args.output_path)
        self.codec = args.codec.lower()
        self.todo: list = []  # (input, {stem: path}) still to write
        self.skipped = self.ok = self.failed = 0
        self.sep = None
        self.cancel = threading.Event()
        self.meter: Optional[_BatchMeter] = None

    def run(self) -> int:
        from . import audio

        audio.silence_ffmpeg_logs()
        self.check_options()
        self.plan()
        self.load_model()
        created = missing_folders([t for _, paths in self.todo for t in paths.values()], self.out_dir)
        t0 = time.monotonic()
        try:
            check_writable(self.out_dir)
            self.separate_all()
        except KeyboardInterrupt:
            self.cancel.set()
            self.con.done()
            self.con.print("interrupted: unfinished outputs were discarded", always=True)
            return EXIT_INTERRUPTED
        finally:
            self.cancel.set()
            self.con.done()
            remove_empty(created)  # left by failed or interrupted files
        return self.report(time.monotonic() - t0)

    # -- steps
    def check_options(self) -> None:
        """The options the run plan does not hold (model, backend, precision, quality: plan())."""
        args = self.args
        check_encoding(self.codec, args.bitrate, args.pcm, args.offset, args.duration, args.filename_format)
        if args.sample_rate is not None and not 1000 <= args.sample_rate <= 768000:
            raise UsageError(f"--sample-rate must be from 1000 to 768000 Hz (got {args.sample_rate})")
        if args.jobs is not None and not 1 <= args.jobs <= 64:
            raise UsageError(f"--jobs must be from 1 to 64 (got {args.jobs})")
        precheck_output(self.out_dir)

    def plan(self) -> None:
        """The run plan (model, backend, precision, quality: every option checked), then every output path,
        checked whole before any work; outputs that exist are kept unless --overwrite."""
        from .run_plan import plan_from_args

        args, con = self.args, self.con
        # The resolver reads every model's config without its weights: the whole output plan is checked first.
        self.run_plan = plan_from_args(args, con)
        inputs, seen = [], set()
        for f in args.files:
            key = os.path.realpath(f)
            if key in seen:
                con.warning(f"{f} is given twice; separating it once")
                continue
            seen.add(key)
            inputs.append(f)
        instruments = self.run_plan.source.config.instruments
        plans = plan_outputs(inputs, self.out_dir, args.filename_format, instruments, self.codec)
        for f, paths in zip(inputs, plans):
            existing = [p for p in paths.values() if p.exists()]
            if existing and not args.overwrite and len(existing) == len(paths):
                con.print(f"skipped {f}: its outputs exist in {_common_parent(existing)} (use --overwrite to "
                          "replace them)")
                self.skipped += 1
                continue
            if existing and not args.overwrite:
                con.print(f"{f}: keeping {len(existing)} existing output(s); writing the missing ones")
                paths = {inst: p for inst, p in paths.items() if not p.exists()}
            self.todo.append((f, paths))

    def load_model(self) -> None:
        from .separator import Separator

        if self.todo:
            self.sep = Separator(self.run_plan)  # a stock model is downloaded here, with a progress line
            if self.args.mwf:
                self.sep.spill_dir = self.out_dir  # the Wiener filter's unnamed temporary files: on the outputs' disk

    def separate_all(self) -> None:
        """Files in order, `jobs` at a time: while one is separated, the next one's decoder starts."""
        if not self.todo:
            return
        jobs = self.args.jobs or (1 if self.sep.device == "cpu" else min(os.cpu_count() or 1, 4))
        self.meter = _BatchMeter(self.con, [self._expected_seconds(f) for f, _ in self.todo])
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fastsep-file")
        try:
            running: list = []
            for i in range(len(self.todo)):
                while len(running) >= jobs:
                    self._finish(running.pop(0))
                running.append((i, pool.submit(self.separate_one, i)))
            for item in running:
                self._finish(item)
        finally:
            self.cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def separate_one(self, i: int):
        """Decode, separate and encode file i (in a worker thread); returns (FileResult, seconds taken)."""
        from .file_engine import separate_file

        f, paths = self.todo[i]
        args = self.args
        label = self.meter.label(i, f)
        if not self.con.tty:
            length = self.meter.expected[i]
            self.con.print(f"{label}: separating" + (f" {fmt_seconds(length)} of audio" if length else ""))
        t0 = time.monotonic()
        result = separate_file(self.sep, f, paths, offset=args.offset, duration=args.duration, codec=self.codec,
                               bitrate=args.bitrate, pcm=args.pcm, sample_rate=args.sample_rate,
                               overwrite=args.overwrite, cancel=self.cancel, on_warning=self.con.warning,
                               progress=lambda done, total: self.meter.update(i, done, total))
        return result, time.monotonic() - t0

    def _finish(self, item) -> None:
        i, fut = item
        _wait(fut)
        f, paths = self.todo[i]
        try:
            result, dt = fut.result()
        except KeyboardInterrupt:
            raise
        except FastsepError as e:
            self.meter.finish(i, 0.0)
            self.failed += 1
            msg = str(e)
            self.con.error(msg if str(f) in msg else f"{f}: {msg}")
            return
        except Exception as e:  # noqa: BLE001 - one bad input must not stop the batch
            self.meter.finish(i, 0.0)
            self.failed += 1
            self.con.error(f"{f}: {_unexpected(e, self.con)}")
            return
        self.ok += 1
        self.meter.finish(i, result.seconds)
        self.con.print(f"{self.meter.label(i, f)}: separated in {fmt_seconds(dt)} "
                       f"({result.seconds / max(dt, 1e-9):.1f}x real time) -> {_common_parent(paths.values())}; "
                       f"{self.meter.summary()}")
        fmt = "16-bit" if self.args.pcm == "s16" else "24-bit"
        for name, n in result.clipped.items():
            if n:
                self.con.warning(f"{result.outputs[name]}: {n} samples clipped to {fmt} full scale (peak "
                                 f"{result.peaks[name]:.3f}); use --pcm f32 (wav) to keep them")

    def report(self, seconds: float) -> int:
        parts = [f"{self.ok} separated"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        where = f"; outputs in {self.out_dir.absolute()}" if self.ok or self.skipped else ""
        self.con.print(f"done in {fmt_seconds(seconds)}: {', '.join(parts)}{where}", always=bool(self.failed))
        return EXIT_FAILED if self.failed else EXIT_OK

    def _expected_seconds(self, f) -> float:
        """The audio seconds a file will give, from its header (0 when unreadable: its error comes later)."""
        from . import audio

        try:
            declared = audio.probe(f).duration or 0.0
        except FastsepError:
            return 0.0
        seconds = max(declared - self.args.offset, 0.0)
        return seconds if self.args.duration is None else min(seconds, self.args.duration)


class _BatchMeter:
    """Progress of the whole batch: audio seconds per second of work and an ETA (terminals redraw one line)."""

    def __init__(self, con: Console, expected: list):
        self.con = con
        self.expected = expected  # seconds of audio per file, from the headers
        self.done = [0.0] * len(expected)
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def label(self, i: int, f) -> str:
        return f"[{i + 1}/{len(self.expected)}] {os.path.basename(f)}"

    def update(self, i: int, done: int, total: int) -> None:
        with self._lock:
            frac = done / total if total else 0.0
            self.done[i] = frac * self.expected[i]
            self._draw(i, frac)

    def finish(self, i: int, seconds: float) -> None:
        """File i is done: `seconds` of audio separated (0 for a failed file)."""
        with self._lock:
            self.expected[i] = self.done[i] = seconds

    def _totals(self) -> tuple[float, float, float]:
        """(fraction of the batch done, audio seconds per second, seconds left or -1 when unknown)."""
        done, total = sum(self.done), sum(self.expected)
        elapsed = time.monotonic() - self.start
        speed = done / elapsed if elapsed > 0 else 0.0
        return (done / total if total else 0.0), speed, ((total - done) / speed if speed > 0 else -1.0)

    def summary(self) -> str:
        with self._lock:
            overall, speed, left = self._totals()
        return (f"batch {overall * 100:.0f}% at {speed:.1f} audio s/s"
                + (f", ETA {fmt_seconds(left)}" if 0 < left and overall < 1 else ""))

    def _draw(self, i: int, frac: float) -> None:
        if not self.con.tty:
            return
        overall, speed, left = self._totals()
        eta = fmt_seconds(left) if left >= 0 else "?"
        self.con.status(f"[{i + 1}/{len(self.expected)}] {bar(frac, 12)} | all {bar(overall, 12)} "
                        f"{overall * 100:3.0f}% | {speed:.1f} audio s/s ({speed:.1f}x real time) | ETA {eta}")


def _wait(fut: Future) -> None:
    """Wait for a write without raising its outcome (finish_write reports it); Ctrl-C still gets through."""
    while not fut.done():
        futures_wait([fut], timeout=0.2)


def _common_parent(paths) -> str:
    paths = [str(p) for p in paths]
    try:
        return os.path.commonpath(paths) if len(paths) > 1 else paths[0]
    except ValueError:
        return paths[0]


def _unexpected(e: BaseException, con: Console) -> str:
    if con.verbose:
        con.print("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip(), always=True, lines=True)
    return f"unexpected {type(e).__name__}: {e} (run with --verbose for details)"


# --------------------------------------------------------------------------------------------------- others


def cmd_download(args, con: Console) -> int:
    from .models import download

    if args.archive and len(args.names) != 1:
        raise UsageError("--archive installs one model: give one NAME")
    for name in args.names:
        download.model_folder_name(name)  # unknown names fail before anything is fetched
    for name in args.names:
        key = download.model_folder_name(name)
        if not args.force and not args.archive:
            found = download.find_model(key)
            if found is not None:
                con.print(f"{key}: already in {found}")
                print(found)
                continue
        folder = download.download(key, force=args.force, archive=args.archive,
                                   progress=download_progress(con, f"downloading {key}"),
                                   log=lambda m: con.print(m))
        con.done()
        con.print(f"{key}: installed in {folder}")
        print(folder)
    return EXIT_OK


def cmd_convert(args, con: Console) -> int:
    try:
        from .models.checkpoint import convert
    except ImportError as e:
        raise FastsepError(f"convert is not available in this build ({e})") from None
    out = convert(args.model, args.output, config=args.config)
    con.print(f"wrote {out}")
    return EXIT_OK


def cmd_export_onnx(args, con: Console) -> int:
    try:
        from .models.checkpoint import export_onnx
    except ImportError as e:
        raise FastsepError(f"export-onnx is not available in this build ({e})") from None
    out = export_onnx(args.model, args.output, precision=args.precision, config=args.config)
    con.print(f"wrote {out}")
    return EXIT_OK


def cmd_evaluate(args, con: Console) -> int:
    from . import evaluate

    return evaluate.run_cli(args, con)


def cmd_catalogue(args, con: Console) -> int:
    from . import catalogue

    return catalogue.run_cli(args, con)


def _batch_profile(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"--batch must be MIN:OPT:MAX, e.g. 1:4:8 (got {text!r})") from None
    if not 1 <= lo <= opt <= hi:
        raise UsageError(f"--batch needs 1 <= MIN <= OPT <= MAX (got {text!r})")
    return lo, opt, hi


def cmd_build(args, con: Console) -> int:
    from .engine_build import build_engine
    from .models.engine_file import describe, read_engine_header
    from .models.source import resolve

    batch = _batch_profile(args.batch)
    t0 = time.perf_counter()
    source = resolve(args.model, args.config)
    path = build_engine(source, args.output, args.precision, batch, flavour=args.flavour, targets=args.targets)
    header, _ = read_engine_header(path)
    con.print(f"wrote {path}: {describe(header)} ({path.stat().st_size / 2**20:.1f} MiB, "
              f"{time.perf_counter() - t0:.1f} s)", always=True)
    return EXIT_OK


def cmd_bench(args, con: Console) -> int:
    import numpy as np

    from .separator import Separator

    if not 0 < args.seconds <= 3600 or not 1 <= args.runs <= 1000:  # also refuses nan and inf
        raise UsageError(f"--seconds must be in (0, 3600] and --runs in 1..1000 (got {args.seconds:g}, {args.runs})")
    if args.batch_segments is not None and not 1 <= args.batch_segments <= 64:
        raise UsageError(f"--batch-segments must be in 1..64 (got {args.batch_segments})")
    from .run_plan import plan_from_args

    plan = plan_from_args(args, con)
    t0 = time.perf_counter()
    sep = Separator(plan)
    load = time.perf_counter() - t0
    rate = sep.config.sample_rate
    x = (0.1 * np.random.default_rng(0).standard_normal((int(args.seconds * rate), 2))).astype(np.float32)
    sep.run(x)  # warm-up: first-call allocations and graph captures
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sep.run(x)
        times.append(time.perf_counter() - t0)
    best = min(times)
    con.print(f"{sep.config.name} on {sep.backend} ({getattr(sep, 'precision', 'fp32')}): load {load:.2f} s, "
              f"{args.seconds:g} s of audio in {best:.3f} s (best of {args.runs}) = "
              f"{args.seconds / best:.1f}x real time", always=True)
    return EXIT_OK


# --sdk flag: (folder under the package, the file that must be in it, help)
SDK_DIRS = {
    "cmake-dir": ("lib/cmake/fastsep", "fastsepConfig.cmake", "the folder of fastsepConfig.cmake (find_package)"),
    "pkg-config-dir": ("lib/pkgconfig", "fastsep.pc", "the folder of fastsep.pc (PKG_CONFIG_PATH)"),
    "include-dir": ("include", "fastsep.h", "the folder of fastsep.h"),
    "lib-dir": ("lib", "libfastsep.so", "the folder of libfastsep.so"),
}


def cmd_sdk(args, con: Console) -> int:
    """One folder of the C SDK that the wheel carries inside the package (CMakeLists.txt, cmake/fastsep_sdk.cmake)."""
    sub, required, _ = SDK_DIRS[args.sdk_dir]
    if sys.platform == "darwin" and required.endswith(".so"):
        required = required[:-3] + ".dylib"
    folder = pathlib.Path(__file__).resolve().parent / sub
    if not (folder / required).is_file():
        raise FastsepError(f"the C SDK is not installed with this fastsep ({folder / required} is missing): it is "
                           "built only where OpenVINO's C++ runtime is found at build time")
    print(folder)  # stdout, for $(fastsep sdk ...); messages go to stderr
    return EXIT_OK


COMMANDS = {
    "sdk": cmd_sdk,
    "backends": cmd_backends,
    "build": cmd_build,
    "bench": cmd_bench,
    "separate": cmd_separate,
    "download": cmd_download,
    "convert": cmd_convert,
    "export-onnx": cmd_export_onnx,
    "evaluate": cmd_evaluate,
    "catalogue": cmd_catalogue,
}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    con = Console(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))

    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):  # not the main thread (embedded use)
        pass
    try:
        apply_spleeter_options(args, con)
        return COMMANDS[args.command](args, con)
    except KeyboardInterrupt:
        con.done()
        con.print("interrupted", always=True)
        return EXIT_INTERRUPTED
    except MissingDependencyError as e:
        con.done()
        con.print(f"fastsep: error: {e}", always=True)
        return EXIT_USAGE
    except FastsepError as e:
        con.done()
        if con.verbose:
            con.print(traceback.format_exc().rstrip(), always=True, lines=True)
        con.print(f"fastsep: error: {e}", always=True)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - last resort: still one line unless --verbose
        con.done()
        con.print(f"fastsep: error: {_unexpected(e, con)}", always=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
