"""The ``fastsep`` command: separate | download | convert | export-onnx | evaluate | build | bench.

Every error the user can cause is a FastsepError printed as one line (no traceback, ``--verbose`` adds it).
Exit status: 0 success, 1 some inputs failed, 2 bad usage or setup (nothing was done), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import queue
import shutil
import signal
import string
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from . import __version__
from .errors import FastsepError, MissingDependencyError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FORMAT_FIELDS = ("filename", "foldername", "instrument", "codec")
DEFAULT_FORMAT = "{filename}/{instrument}.{codec}"
MAX_SECONDS = 1e9  # -s/-d beyond any real file: keeps sample counts exact integers
ANY_STEM = "{instrument}"  # stand-in stem name that plans outputs before a model names its stems


class UsageError(FastsepError):
    """Bad options or setup found before any work starts."""


# --------------------------------------------------------------------------------------------------- console


class Console:
    """Messages and a progress line on stderr, shared by threads.

    On a terminal the progress line is redrawn in place; elsewhere (pipes, CI logs) it degrades to plain lines
    at the start and end of each file.  Errors and warnings are always printed; ``quiet`` hides the rest.
    """

    def __init__(self, stream=None, quiet: bool = False, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.tty = tty and os.environ.get("TERM") != "dumb" and not quiet
        self._lock = threading.RLock()
        self._line = ""
        self._last_draw = 0.0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _clear(self) -> None:
        if self.tty and self._line:
            self._write("\r\x1b[2K")

    def print(self, text: str, always: bool = False) -> None:
        if self.quiet and not always:
            return
        with self._lock:
            self._clear()
            self._write(text + "\n")
            if self.tty and self._line:
                self._write(self._line)

    def error(self, text: str) -> None:
        self.print(f"error: {text}", always=True)

    def warning(self, text: str) -> None:
        self.print(f"warning: {text}", always=True)

    def status(self, text: str, force: bool = False) -> None:
        """Redraw the progress line (terminals only; throttled to 10 Hz unless ``force``)."""
        if not self.tty:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self._line = text[:width]
            self._write("\r\x1b[2K" + self._line)

    def done(self) -> None:
        with self._lock:
            self._clear()
            self._line = ""


def _bar(fraction: float, width: int = 20) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _download_progress(con: Console, label: str):
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if con.tty:
            frac = done / total if total else 0.0
            con.status(f"{label} {_bar(frac)} {_size(done)}" + (f" / {_size(total)}" if total else ""))
        elif time.monotonic() - last[0] > 10 or (total and done >= total):
            last[0] = time.monotonic()
            con.print(f"{label}: {_size(done)}" + (f" of {_size(total)}" if total else ""))

    return progress


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
    s.add_argument("files", nargs="+", metavar="FILES", help="audio or video files (anything FFmpeg decodes)")
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
    s.add_argument("-b", "--bitrate", default="128k", help="bitrate of lossy codecs (default: 128k)")
    s.add_argument("--pcm", default="s16", choices=("s16", "s24", "f32"),
                   help="wav sample format: 16-bit, 24-bit or 32-bit float (default: s16, as spleeter); flac is "
                        "16-bit for s16, else 24-bit")
    s.add_argument("-s", "--offset", type=float, default=0.0, help="start offset in seconds (default: 0)")
    s.add_argument("-d", "--duration", type=float, default=None,
                   help="seconds to separate from the offset (default: the whole file; no 10-minute cut)")
    s.add_argument("--mwf", action="store_true",
                   help="multichannel Wiener filter instead of ratio masks, as spleeter --mwf (CPU pipeline; its "
                        "memory grows with the song)")
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"),
                   help="network runner: auto (an .engine runs on TensorRT, else onnxruntime on the CPU), "
                        "onnxruntime, tensorrt or torch (GPU where present)")
    s.add_argument("--precision", default=None, choices=("fp32", "fp16"),
                   help="network precision of the GPU backends (default: fp16 for tensorrt, fp32 for torch)")

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
    e.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="weights precision")
    e.add_argument("--config", default=None, help="stock config name or Spleeter JSON")

    v = sub.add_parser("evaluate", parents=[common], help="SDR/SIR/SAR/ISR (museval, BSSEval v4) on tracks",
                       description="Separate tracks that have reference stems and score them with museval "
                                   "(BSSEval v4, 1 s frames): median over frames per track, then median over "
                                   "tracks, as 'spleeter evaluate' reports.")
    v.add_argument("inputs", nargs="+", metavar="PATH",
                   help="musdb folder (<track>/mixture.wav + <stem>.wav, or a test/ subfolder), one track folder, "
                        "or .stem.mp4 files (streams: mix, drums, bass, other, vocals)")
    v.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems", help="model (default 2stems)")
    v.add_argument("--config", default=None, help="stock config name or Spleeter JSON")
    v.add_argument("--backend", default="auto", help="network runner (default: auto)")
    v.add_argument("-o", "--output_path", "--output-path", dest="output_path", default=None,
                   help="also write the estimates here as <track>/<instrument>.wav (float)")
    v.add_argument("--json", default=None, metavar="FILE", help="write per-track and aggregate scores as JSON")
    v.add_argument("-d", "--duration", type=float, default=None, help="evaluate only the first seconds of each track")

    b = sub.add_parser("build", parents=[common], help="build a TensorRT engine for the GPU pipeline",
                       description="Compile a model's U-Nets into a TensorRT engine file that holds its config, so "
                                   "that Separator('x.engine') needs nothing else. Uses tensorrt where installed, "
                                   "else tensorrt_rtx (pip install 'fastsep[trt]'), which also builds on a CPU.")
    b.add_argument("model", help="stock name, Spleeter checkpoint folder, .safetensors or fastsep .onnx")
    b.add_argument("-o", "--output", required=True, help="engine file to write")
    b.add_argument("--precision", default="fp16", choices=("fp16", "fp32"), help="default: fp16")
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
    m.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    m.add_argument("--precision", default=None, choices=("fp32", "fp16"), help="GPU backends only")
    m.add_argument("--batch-segments", type=int, default=None, help="segments per network call")
    m.add_argument("--seconds", type=float, default=60.0, help="length of each song (default 60)")
    m.add_argument("--runs", type=int, default=3, help="timed songs (default 3)")
    return p


# --------------------------------------------------------------------------------------------------- separate


def check_duration(duration: float | None) -> None:
    if duration is not None and not 0 < duration <= MAX_SECONDS:  # also refuses nan and inf
        raise UsageError(f"-d/--duration must be > 0 and at most {MAX_SECONDS:g} s (got {duration:g})")


def _quote(text, limit: int = 100) -> str:
    """repr() of a user- or model-supplied string, cut short: error lines stay one short line."""
    r = repr(str(text))
    return r if len(r) <= limit else r[:limit] + "...'"


def _check_format(fmt: str) -> None:
    """``-f`` names a file and uses only the plain FORMAT_FIELDS (else UsageError)."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as e:
        raise UsageError(f"bad -f/--filename_format {_quote(fmt)}: {e}") from None
    plain = ", ".join("{" + x + "}" for x in FORMAT_FIELDS)
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        base = field.split(".")[0].split("[")[0]
        if base in FORMAT_FIELDS and (field != base or spec or conversion):
            # str.format would honour them: a width spec alone can ask for gigabytes
            raise UsageError(f"bad -f/--filename_format: {_quote(written)} is not allowed; only the plain fields "
                             f"{plain} (no format specs, conversions, attributes or indexes)")
        if field not in FORMAT_FIELDS:
            what = "a positional {}" if field == "" or field.isdigit() else written
            raise UsageError(f"bad -f/--filename_format {_quote(fmt)}: {what} is not a field (use {plain})")
    if not fmt.strip() or fmt.endswith(("/", os.sep)):
        raise UsageError(f"bad -f/--filename_format {_quote(fmt)}: it must name a file")


def _precheck_output(folder: pathlib.Path) -> None:
    """Fail early (before loading a model) for an output folder that cannot be created or written; creates nothing."""
    p = folder.absolute()
    while not p.exists():
        if p.is_symlink():
            raise UsageError(f"output folder {folder}: {p} is a broken link")
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"output folder {folder} cannot be created: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {folder} is not writable ({p}: permission denied)")


def _check_writable(folder: pathlib.Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"output folder {folder} exists and is not a folder") from None
    except OSError as e:
        raise UsageError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} exists and is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fastsep-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"output folder {folder} is not writable: {e.strerror or e}") from None


#: Extensions besides audio.CODECS' own that name a codec's container just as well (-f may spell them out).
EXTENSION_ALIASES = {"ogg": ("oga",), "opus": ("ogg",), "m4a": ("mp4",)}


def codec_extensions(codec: str) -> tuple:
    from .audio import CODECS

    return (CODECS[codec][2],) + EXTENSION_ALIASES.get(codec, ())


def resolved_folder(folder: pathlib.Path) -> str:
    """The real path of an output folder (links followed, whether or not it exists yet)."""
    return os.path.realpath(folder)


def check_inside(target: pathlib.Path, root: str, out_dir: pathlib.Path, owner: str) -> None:
    """Refuse (UsageError) a planned output whose real path is not strictly inside ``root`` (the real ``out_dir``).

    Links in existing parents (and the target itself) are followed: the check is on where the write would land."""
    try:
        real = os.path.realpath(target)
    except ValueError as e:  # an embedded NUL byte
        raise UsageError(f"output {_quote(target)} of {owner} is not a valid path ({e})") from None
    if real == root or os.path.commonpath([real, root]) != root:
        via = f" (through a link: {_quote(real)})" if real != os.path.abspath(target) else ""
        raise UsageError(f"output {_quote(target)} of {owner} is outside the output folder {out_dir}{via}")


def output_paths(inp: str, out_dir: pathlib.Path, fmt: str, instruments, codec: str, root: str | None = None) -> dict:
    """{instrument: output path} for input ``inp``, each inside ``out_dir`` with the codec's extension.

    Raises UsageError when a path leaves the output folder (resolved: ``root``), when two stems share a path, or when
    the file name's extension is not the codec's."""
    root = root or resolved_folder(out_dir)
    p = pathlib.Path(inp)
    # abspath drops "." and ".." lexically, so {foldername} is a real folder's name as typed, never ".."
    fields = dict(filename=p.stem if p.name else "audio", foldername=pathlib.Path(os.path.abspath(p)).parent.name,
                  codec=codec)
    paths = {}
    seen = {}
    for inst in instruments:
        rel = fmt.format(instrument=inst, **fields)
        target = pathlib.Path(os.path.normpath(out_dir / rel))
        check_inside(target, root, out_dir, f"{inp} (-f/--filename_format {_quote(fmt)})")
        ext = target.suffix.lower().lstrip(".")
        if ext not in codec_extensions(codec):
            raise UsageError(f"-f/--filename_format {_quote(fmt)} gives {_quote(target.name)} an extension that is not "
                             f"-c {codec}'s ({' or '.join('.' + e for e in codec_extensions(codec))}): end it with "
                             "'.{codec}' or give the -c of its extension")
        if target in seen:
            raise UsageError(f"-f/--filename_format {_quote(fmt)} maps stems {_quote(seen[target])} and {_quote(inst)} "
                             f"of {inp} to the same file {target}: add {{instrument}}")
        seen[target] = inst
        paths[inst] = target
    return paths


def plan_outputs(inputs, out_dir: pathlib.Path, fmt: str, instruments, codec: str) -> list:
    """output_paths of every input; no output may be an input (itself, or through a link) nor shared by two inputs."""
    root = resolved_folder(out_dir)
    plans = [output_paths(f, out_dir, fmt, instruments, codec, root) for f in inputs]
    input_ids = {}
    for f in inputs:
        try:
            st = os.stat(f)
            input_ids[(st.st_dev, st.st_ino)] = f
        except (OSError, ValueError):
            pass  # a missing input is reported when it is read
    owner = {}
    for f, paths in zip(inputs, plans):
        for target in paths.values():
            try:
                st = os.stat(target)
                source = input_ids.get((st.st_dev, st.st_ino))
            except OSError:
                source = None
            if source is not None:
                raise UsageError(f"output {target} of {f} is the input {source}: choose another -o or -f")
            key = os.path.realpath(target)
            if key in owner:
                raise UsageError(f"{owner[key]} and {f} would both write {target}: use -f with {{foldername}} "
                                 "or separate them in two runs")
            owner[key] = f
    return plans


def missing_folders(paths, out_dir: pathlib.Path) -> list:
    """Folders that writing ``paths`` (and ``out_dir``) would create, deepest first: a run removes those it leaves
    empty."""
    missing = set()
    for chain in [[out_dir, *out_dir.parents]] + [pathlib.Path(p).parents for p in paths]:
        for folder in chain:
            if folder.exists() or folder.is_symlink():
                break
            missing.add(folder)
    return sorted(missing, key=lambda f: len(f.absolute().parts), reverse=True)


def remove_empty(folders) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            pass


def resolve_model(model: str, config):
    """Spleeter's ``-p config.json``: the JSON is the config and its ``model_dir`` the checkpoint.

    ``model_dir`` is looked up as a path (as given, then beside the JSON), then under ``$MODEL_PATH`` (default
    ``./pretrained_models``), then as a stock name (downloaded if needed).  Other models pass through unchanged.
    """
    import json

    if config is not None or not model.lower().endswith(".json") or not os.path.isfile(model):
        return model, config
    try:
        with open(model, encoding="utf-8") as f:
            params = json.load(f)
        model_dir = str(params["model_dir"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"cannot read model_dir from Spleeter config {model}: {e}") from None
    from .models import download

    base = os.path.dirname(os.path.abspath(model))
    spleeter_home = os.environ.get("MODEL_PATH") or "pretrained_models"
    for cand in (model_dir, os.path.join(base, model_dir), os.path.join(spleeter_home, model_dir)):
        if os.path.isdir(cand):
            return cand, model
    if download.is_stock(model_dir):
        return model_dir, model
    raise UsageError(f"model_dir {model_dir!r} of {model} not found (as a path, beside the config or under "
                     f"{spleeter_home})")


def _instruments_hint(model: str, config) -> tuple | None:
    """Stems of a stock model or explicit config, known without loading any weights (None otherwise).

    Also rejects, before anything is loaded, a model that is neither a stock name nor an existing path."""
    from .models import config as configs
    from .models import download

    if not os.path.exists(model) and not download.is_stock(model):
        raise UsageError(f"unknown model {model!r}: not a stock model ({', '.join(configs.STOCK_NAMES)}) nor an "
                         "existing checkpoint folder, .safetensors or .onnx file")
    try:
        if config is not None:
            return tuple(configs.load(config).instruments)
        if download.is_stock(model) and not os.path.exists(model):
            return tuple(configs.stock(model).instruments)
    except FastsepError:
        return None  # let the Separator report it
    return None


def _make_separator(model: str, config, backend: str, con: Console, precision: str | None = None,
                    mwf: bool = False):
    from . import Separator
    from .models import download

    if not os.path.exists(model) and download.is_stock(model) and download.find_model(model) is None:
        download.ensure_model(model, progress=_download_progress(con, f"downloading {model}"),
                              log=lambda m: con.print(m))
        con.done()
    return Separator(model, config=config, backend=backend, precision=precision, mwf=mwf)


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def cmd_separate(args, con: Console) -> int:
    from . import audio

    audio.silence_ffmpeg_logs()
    if args.mwf and args.backend not in ("auto", "onnxruntime"):
        raise UsageError("--mwf runs in the CPU pipeline only: use --backend onnxruntime (or auto)")
    codec = args.codec.lower()
    if codec not in audio.CODECS:
        raise UsageError(f"unknown codec {args.codec!r}: choose one of {', '.join(audio.CODECS)}")
    try:
        audio.parse_bitrate(args.bitrate)
    except FastsepError as e:
        raise UsageError(str(e)) from None
    if not 0 <= args.offset <= MAX_SECONDS:  # also refuses nan and inf
        raise UsageError(f"-s/--offset must be >= 0 and at most {MAX_SECONDS:g} s (got {args.offset:g})")
    check_duration(args.duration)
    _check_format(args.filename_format)
    out_dir = pathlib.Path(args.output_path)
    _precheck_output(out_dir)

    inputs = []
    seen_inputs = set()
    for f in args.files:
        key = os.path.realpath(f)
        if key in seen_inputs:
            con.warning(f"{f} is given twice; separating it once")
            continue
        seen_inputs.add(key)
        inputs.append(f)

    args.model, args.config = resolve_model(args.model, args.config)
    # Stock models and explicit configs name their stems without loading weights: the whole output plan is checked
    # first.  For other models a stand-in stem checks all that does not depend on the names before the load.
    hint = _instruments_hint(args.model, args.config)
    plans = plan_outputs(inputs, out_dir, args.filename_format, hint or (ANY_STEM,), codec)
    sep = None
    if hint is None:
        sep = _make_separator(args.model, args.config, args.backend, con, args.precision, args.mwf)
        plans = plan_outputs(inputs, out_dir, args.filename_format, tuple(sep.instruments), codec)
    instruments = hint or tuple(sep.instruments)

    todo, skipped = [], 0
    for f, paths in zip(inputs, plans):
        existing = [p for p in paths.values() if p.exists()]
        if existing and not args.overwrite and len(existing) == len(paths):
            con.print(f"skipped {f}: its outputs exist in {_common_parent(existing)} (use --overwrite to replace "
                      "them)")
            skipped += 1
            continue
        if existing and not args.overwrite:
            con.print(f"{f}: keeping {len(existing)} existing output(s); writing the missing ones")
        todo.append((f, paths))

    if todo and sep is None:
        sep = _make_separator(args.model, args.config, args.backend, con, args.precision, args.mwf)
        if tuple(sep.instruments) != tuple(instruments):
            raise UsageError(f"model {args.model} has stems {', '.join(sep.instruments)}, expected "
                             f"{', '.join(instruments)}")
    rate = int(sep.config.sample_rate) if sep is not None else 44100
    created = missing_folders([t for _, paths in todo for t in paths.values()], out_dir)

    n = len(todo)
    failed = 0
    ok = 0
    cancel = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=1)  # bounds memory: one decoded file waits while one is separated
    state = {"done_files": 0.0}

    def decoder():
        for i, (f, _) in enumerate(todo):
            if cancel.is_set():
                return
            t0 = time.monotonic()
            try:
                x, sr = audio.load(f, offset=args.offset, duration=args.duration, sample_rate=rate,
                                   on_warning=con.warning)  # damaged or truncated input, with its name
                item = (i, x, sr, None, time.monotonic() - t0)
            except FastsepError as e:
                item = (i, None, None, str(e), 0.0)
            except Exception as e:  # noqa: BLE001 - one bad input must not stop the batch
                item = (i, None, None, _unexpected(e, con), 0.0)
            while not cancel.is_set():
                try:
                    decoded.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
        decoded.put(None)

    def write(i: int, stems: dict) -> list:
        f, paths = todo[i]
        reports = []
        for inst, target in paths.items():
            if target.exists() and not args.overwrite:
                continue
            rep = audio.save(target, stems[inst], rate, codec=codec, bitrate=args.bitrate, pcm=args.pcm,
                             overwrite=args.overwrite, cancel=cancel)
            reports.append(rep)
        return reports

    def finish_write(i: int, fut: Future) -> None:
        nonlocal ok, failed
        f, paths = todo[i]
        try:
            reports = fut.result()
        except FastsepError as e:
            failed += 1
            con.error(f"{f}: {e}")
            return
        except KeyboardInterrupt:
            return
        except Exception as e:  # noqa: BLE001
            failed += 1
            con.error(f"{f}: {_unexpected(e, con)}")
            return
        for rep in reports:
            if rep.clipped:
                fmt = "16-bit" if args.pcm == "s16" else "24-bit"
                con.warning(f"{rep.path}: {rep.clipped} samples clipped to {fmt} full scale (peak {rep.peak:.3f}); "
                            "use --pcm f32 (wav) to keep them")
        ok += 1

    pending: list = []
    t_start = time.monotonic()
    worker = threading.Thread(target=decoder, name="fastsep-decode", daemon=True)
    writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fastsep-write")
    try:
        _check_writable(out_dir)
        if n:
            worker.start()
        while n:
            try:
                item = decoded.get(timeout=0.2)
            except queue.Empty:
                nxt = min(int(state["done_files"]), n - 1)
                con.status(f"[{nxt + 1}/{n}] {os.path.basename(todo[nxt][0])}: decoding")
                continue
            if item is None:
                break
            i, x, sr, err, t_dec = item
            f, paths = todo[i]
            label = f"[{i + 1}/{n}] {os.path.basename(f)}"
            if err is not None:
                failed += 1
                con.error(err)
                state["done_files"] += 1
                continue
            seconds = x.shape[0] / sr

            def progress(done, total, label=label):
                frac = done / total if total else 1.0
                overall = (state["done_files"] + frac) / n
                con.status(f"{label} {_bar(frac, 16)} {done}/{total} segments | all {_bar(overall, 12)} "
                           f"{overall * 100:3.0f}%", force=done == total)

            if not con.tty:
                con.print(f"{label}: separating {_fmt_s(seconds)} of audio")
            progress(0, 1)
            t0 = time.monotonic()
            try:
                stems = sep.run(x, sr, progress=progress)
            except FastsepError as e:
                failed += 1
                con.error(f"{f}: {e}")
                state["done_files"] += 1
                continue
            except Exception as e:  # noqa: BLE001
                failed += 1
                con.error(f"{f}: {_unexpected(e, con)}")
                state["done_files"] += 1
                continue
            del x
            dt = time.monotonic() - t0
            state["done_files"] += 1
            con.print(f"{label}: separated in {_fmt_s(dt)} ({seconds / max(dt, 1e-9):.1f}x real time) -> "
                      f"{_common_parent(paths.values())}")
            # keep at most two files' stems waiting to be written
            while len(pending) >= 2:
                j, fut = pending.pop(0)
                _wait(fut)
                finish_write(j, fut)
            pending.append((i, writers.submit(write, i, stems)))
            del stems
        for j, fut in pending:
            _wait(fut)
            finish_write(j, fut)
        pending = []
    except KeyboardInterrupt:
        cancel.set()
        con.done()
        con.print("interrupted: unfinished outputs were discarded", always=True)
        writers.shutdown(wait=True, cancel_futures=True)
        return EXIT_INTERRUPTED
    finally:
        cancel.set()
        writers.shutdown(wait=True)
        con.done()
        remove_empty(created)  # left by failed or interrupted files
    total_time = time.monotonic() - t_start
    parts = [f"{ok} separated"]
    if failed:
        parts.append(f"{failed} failed")
    if skipped:
        parts.append(f"{skipped} skipped")
    where = f"; outputs in {out_dir.absolute()}" if ok or skipped else ""
    con.print(f"done in {_fmt_s(total_time)}: {', '.join(parts)}{where}", always=bool(failed))
    return EXIT_FAILED if failed else EXIT_OK


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
        con.print("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip(), always=True)
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
                                   progress=_download_progress(con, f"downloading {key}"),
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
        from .models.onnx_export import export_onnx
    except ImportError as e:
        raise FastsepError(f"export-onnx is not available in this build ({e})") from None
    out = export_onnx(args.model, args.output, precision=args.precision, config=args.config)
    con.print(f"wrote {out}")
    return EXIT_OK


def cmd_evaluate(args, con: Console) -> int:
    from . import evaluate

    return evaluate.run_cli(args, con)


def _batch_profile(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"--batch must be MIN:OPT:MAX, e.g. 1:4:8 (got {text!r})") from None
    if not 1 <= lo <= opt <= hi:
        raise UsageError(f"--batch needs 1 <= MIN <= OPT <= MAX (got {text!r})")
    return lo, opt, hi


def cmd_build(args, con: Console) -> int:
    from .engine_build import build_engine, describe, read_engine_header

    batch = _batch_profile(args.batch)
    t0 = time.perf_counter()
    path = build_engine(args.model, args.output, args.precision, batch, args.config, args.flavour, args.targets)
    header, _ = read_engine_header(path)
    con.print(f"wrote {path}: {describe(header)} ({path.stat().st_size / 2**20:.1f} MiB, "
              f"{time.perf_counter() - t0:.1f} s)", always=True)
    return EXIT_OK


def cmd_bench(args, con: Console) -> int:
    import numpy as np

    from . import Separator

    if args.seconds <= 0 or args.runs < 1:
        raise UsageError("--seconds must be positive and --runs at least 1")
    t0 = time.perf_counter()
    sep = Separator(args.model, config=args.config, backend=args.backend, batch_segments=args.batch_segments,
                    precision=args.precision)
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


COMMANDS = {
    "build": cmd_build,
    "bench": cmd_bench,
    "separate": cmd_separate,
    "download": cmd_download,
    "convert": cmd_convert,
    "export-onnx": cmd_export_onnx,
    "evaluate": cmd_evaluate,
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
            con.print(traceback.format_exc().rstrip(), always=True)
        con.print(f"fastsep: error: {e}", always=True)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - last resort: still one line unless --verbose
        con.done()
        con.print(f"fastsep: error: {_unexpected(e, con)}", always=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
