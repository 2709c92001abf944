"""Option groups that several commands take, each defined once: model, backend, output, encoding, quality, and
spleeter's ignored options. A command adds the groups it needs; the run plan reads them (fastsep.run_plan)."""

from __future__ import annotations

import argparse

from ..console import Console
from ..models.precision import PRECISIONS
from ..outputs import DEFAULT_FORMAT
from ..quality_options import RECOMMENDED_OVERLAP

MODEL_HELP = ("stock model (2stems, 4stems, 5stems, *-16kHz, optional 'spleeter:' prefix), a Spleeter checkpoint "
              "folder, a .safetensors or .onnx file (default: 2stems)")


def common_parent() -> argparse.ArgumentParser:
    """--verbose and --quiet, which every command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show tracebacks of unexpected errors")
    common.add_argument("-q", "--quiet", action="store_true", help="print errors and warnings only")
    return common


def add_model_options(parser, *, positional: bool = False, model_help: str = MODEL_HELP) -> None:
    """The model (-p, as spleeter, or a positional MODEL where the command's first argument is one) and --config."""
    if positional:
        parser.add_argument("model", help=model_help)
    else:
        parser.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems", help=model_help)
    parser.add_argument("--config", default=None, help="stock config name or Spleeter JSON for a custom checkpoint")


def add_backend_options(parser) -> None:
    """--backend and --precision, from the backend registry."""
    from .. import backends

    parser.add_argument("--backend", default="auto", choices=backends.names(),
                        help="network runner: auto (an .engine runs on TensorRT, anything else on the fastest exact "
                             "CPU backend installed) or one of " + ", ".join(backends.REGISTRY)
                             + " ('fastsep backends' lists them)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="network precision, as the backend offers (default: its first; fp32 is Spleeter-exact)")


def add_output_options(parser, *, default: str | None = "separated_audio", required: bool = False,
                       help: str = "output folder (default: ./separated_audio)", filename_format: bool = True) -> None:
    """-o, the output folder, and -f, the path of each stem under it (fastsep.outputs)."""
    parser.add_argument("-o", "--output_path", "--output-path", dest="output_path", default=default,
                        required=required, help=help)
    if filename_format:
        parser.add_argument("-f", "--filename_format", "--filename-format", dest="filename_format",
                            default=DEFAULT_FORMAT,
                            help="output path under the output folder; fields {filename}, {foldername}, "
                                 "{instrument}, {codec} (default: %(default)s)")


def add_encoding_options(parser) -> None:
    """The stems' codec, bitrate and sample format, and the span of each input to separate."""
    parser.add_argument("-c", "--codec", default="wav", help="wav, flac, mp3, ogg, opus, m4a or wma (default: wav)")
    parser.add_argument("-b", "--bitrate", "--birate", dest="bitrate", default="128k",
                        help="bitrate of lossy codecs (default: 128k)")
    parser.add_argument("--pcm", default="s16", choices=("s16", "s24", "f32"),
                        help="wav sample format: 16-bit, 24-bit or 32-bit float (default: s16, as spleeter); flac "
                             "is 16-bit for s16, else 24-bit")
    parser.add_argument("-s", "--offset", type=float, default=0.0, help="start offset in seconds (default: 0)")
    parser.add_argument("-d", "--duration", type=float, default=None,
                        help="seconds to separate from the offset (default: the whole file; no 10-minute cut)")


def add_quality_options(parser) -> None:
    """--overlap and --full-band: beyond spleeter's output (docs/spec.md §12)."""
    parser.add_argument("--overlap", type=float, nargs="?", const=RECOMMENDED_OVERLAP, default=0.0, metavar="X",
                        help="beyond spleeter: segments overlap by the fraction X (0 to 0.9; alone: "
                             f"{RECOMMENDED_OVERLAP}) and are cross-faded, so no seam remains every 11.9 s; network "
                             "time x 1/(1-X)")
    parser.add_argument("--full-band", action="store_true",
                        help="beyond spleeter: keep the band above the model's 11 kHz (16.5 kHz for -16kHz), so "
                             "the stems sum to the input")


def add_ignored_spleeter_options(parser) -> None:
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


def note_ignored_options(args, con: Console) -> None:
    """One line per spleeter option that was given and is ignored."""
    for option, note in IGNORED_NOTES.items():
        if getattr(args, option, None) is not None:
            con.print(f"note: {note}")
