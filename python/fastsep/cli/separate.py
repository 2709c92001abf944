"""`fastsep separate`: audio files into stems, the model loaded once for all files (spleeter separate's options)."""

from __future__ import annotations

import os
import pathlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Optional

from ..console import Console, bar, fmt_seconds
from ..errors import FastsepError, UsageError
from ..outputs import check_encoding, check_writable, missing_folders, plan_outputs, precheck_output, remove_empty
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, unexpected
from .options import (add_backend_options, add_encoding_options, add_ignored_spleeter_options, add_model_options,
                      add_output_options, add_quality_options, note_ignored_options)


def add_parser(sub, common) -> None:
    s = sub.add_parser("separate", parents=[common], help="separate audio files into stems",
                       description="Separate audio files into stems (the model is loaded once for all files).")
    s.add_argument("files", nargs="*", metavar="FILES", help="audio or video files (anything FFmpeg decodes)")
    s.add_argument("-i", "--inputs", dest="deprecated_inputs", nargs="+", action="extend", default=[],
                   metavar="FILE", help="the same as FILES (spleeter 2.0's way to name inputs)")
    add_model_options(s)
    add_output_options(s)
    add_encoding_options(s)
    s.add_argument("-m", "--mwf", action="store_true",
                   help="multichannel Wiener filter instead of ratio masks, as spleeter --mwf (CPU pipeline; "
                        "spills the network's estimates to unnamed temporary files in the output folder)")
    s.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="sample rate of the stems (default: each input's own)")
    s.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="files in flight, each decoding and encoding in its own threads (default: 1 on the CPU, "
                        "where the network uses every core; up to 4 on a GPU)")
    add_quality_options(s)
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_backend_options(s)
    add_ignored_spleeter_options(s)


def run(args, con: Console) -> int:
    args.files = args.files + args.deprecated_inputs  # spleeter 2.0's -i/--inputs name inputs too
    if not args.files:
        raise UsageError("separate: give the audio files to separate (FILES)")
    note_ignored_options(args, con)
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
        from .. import audio

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
        from ..run_plan import plan_from_args

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
        from ..separator import Separator

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
        from ..file_engine import separate_file

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
            self.con.error(f"{f}: {unexpected(e, self.con)}")
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
        from .. import audio

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
