"""fastsep.audio: decoding (formats, containers, offset/duration, resampling) and atomic, clip-aware encoding."""

from __future__ import annotations

import os
import pathlib
import threading

import numpy as np
import pytest

av = pytest.importorskip("av")

from fastsep import audio  # noqa: E402
from fastsep.errors import InputError  # noqa: E402

SR = 44100


def tone(seconds=2.0, rate=SR, channels=2, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    freqs = [440.0, 660.0, 550.0, 770.0, 330.0, 880.0][:channels]
    return np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs], axis=1).astype(np.float32)


def peak_freq(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * rate / len(x)


def no_temp_files(folder):
    return [p.name for p in pathlib.Path(folder).iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("codec,pcm,tol", [
    ("wav", "s16", 2 ** -15), ("wav", "s24", 2 ** -23), ("wav", "f32", 0.0),
    ("flac", "s16", 2 ** -15), ("flac", "s24", 2 ** -23),
])
def test_lossless_roundtrip(tmp_path, codec, pcm, tol):
    x = tone()
    path = tmp_path / f"x.{codec}"
    rep = audio.save(path, x, SR, pcm=pcm)
    assert rep.clipped == 0
    y, rate = audio.load(path)
    assert rate == SR and y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() <= tol
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("codec", ["mp3", "ogg", "opus", "m4a", "wma"])
def test_lossy_codecs_decode_back(tmp_path, codec):
    x = tone(3.0)
    path = tmp_path / f"x.{audio.CODECS[codec][2]}"
    audio.save(path, x, SR, bitrate="192k")
    info = audio.probe(path)
    assert info.streams == 1 and info.channels == 2
    y, rate = audio.load(path)
    assert rate == SR and y.shape[1] == 2
    assert abs(y.shape[0] - x.shape[0]) < 0.05 * SR  # codec delay/padding only
    mid = y[SR // 2: SR // 2 + 16384, 0]
    assert abs(peak_freq(mid, SR) - 440) < 5
    assert no_temp_files(tmp_path)


def test_bitrate_is_applied(tmp_path):
    x = tone(4.0)
    audio.save(tmp_path / "lo.mp3", x, SR, bitrate="64k")
    audio.save(tmp_path / "hi.mp3", x, SR, bitrate="320k")
    lo, hi = (tmp_path / "lo.mp3").stat().st_size, (tmp_path / "hi.mp3").stat().st_size
    assert hi > 3 * lo


def test_integer_pcm_clipping_is_counted_not_silent(tmp_path):
    x = tone(1.0, amp=1.5)
    over = int(np.count_nonzero(np.abs(x) * 32768 > 32767.5))
    rep = audio.save(tmp_path / "c.wav", x, SR, pcm="s16")
    assert rep.clipped >= over > 0 and rep.peak > 1.4
    rep = audio.save(tmp_path / "f.wav", x, SR, pcm="f32")
    assert rep.clipped == 0
    y, _ = audio.load(tmp_path / "f.wav")
    assert np.abs(y).max() > 1.4  # float wav keeps it
    rep = audio.save(tmp_path / "m.mp3", x, SR)
    assert rep.clipped == 0  # lossy codecs are fed float: nothing clipped by us


def test_save_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "x.wav"
    audio.save(path, tone(1.0), SR)
    before = path.read_bytes()
    with pytest.raises(audio.OutputExistsError, match="exists"):
        audio.save(path, tone(0.5), SR, overwrite=False)
    assert path.read_bytes() == before
    audio.save(path, tone(0.5), SR, overwrite=True)
    assert path.read_bytes() != before
    assert no_temp_files(tmp_path)


def test_cancelled_save_leaves_nothing(tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(KeyboardInterrupt):
        audio.save(tmp_path / "x.flac", tone(5.0), SR, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_offset_and_duration_are_sample_exact(tmp_path):
    x = tone(4.0)
    audio.save(tmp_path / "x.wav", x, SR, pcm="f32")
    y, _ = audio.load(tmp_path / "x.wav", offset=1.25, duration=0.5)
    np.testing.assert_array_equal(y, x[int(1.25 * SR): int(1.75 * SR)])
    y, _ = audio.load(tmp_path / "x.wav", offset=3.5)  # to the end
    np.testing.assert_array_equal(y, x[int(3.5 * SR):])
    y, _ = audio.load(tmp_path / "x.wav", duration=100.0)  # longer than the file: whole file, no error
    assert y.shape == x.shape
    with pytest.raises(InputError, match="past the end"):
        audio.load(tmp_path / "x.wav", offset=10.0)


def test_long_offset_uses_seek_and_stays_exact(tmp_path):
    rate = 8000  # keeps the 70 s file small
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((70 * rate, 2)) * 0.1).astype(np.float32)
    audio.save(tmp_path / "long.wav", x, rate, pcm="f32")
    audio.save(tmp_path / "long.flac", x, rate, pcm="s24")
    for name, tol in (("long.wav", 0.0), ("long.flac", 2 ** -23)):
        y, r = audio.load(tmp_path / name, offset=65.5, duration=2.0, sample_rate=None)
        assert r == rate and y.shape == (2 * rate, 2)
        assert np.abs(y - x[int(65.5 * rate): int(67.5 * rate)]).max() <= tol, name


def test_resampling_uses_a_proper_filter(tmp_path):
    x = tone(2.0, rate=48000)
    audio.save(tmp_path / "x48.wav", x, 48000, pcm="f32")
    y, rate = audio.load(tmp_path / "x48.wav")  # default: to 44.1 kHz
    assert rate == SR
    assert abs(y.shape[0] - 2 * SR) <= 64
    seg = y[SR // 2: SR // 2 + 32768]
    assert abs(peak_freq(seg[:, 0], SR) - 440) < 2 and abs(peak_freq(seg[:, 1], SR) - 660) < 2
    # a proper band-limited resampler keeps the tone clean: no aliasing / imaging above -60 dB
    ref = (0.5 * np.sin(2 * np.pi * 440 * (np.arange(32768) + SR // 2) / SR + 0)).astype(np.float32)
    spec = np.abs(np.fft.rfft(seg[:, 0] * np.hanning(32768)))
    spec_db = 20 * np.log10(spec / spec.max() + 1e-12)
    k = int(round(440 * 32768 / SR))
    spec_db[k - 40: k + 40] = -200
    assert spec_db.max() < -60
    assert np.isfinite(ref).all()
    # native rate kept when asked
    z, r = audio.load(tmp_path / "x48.wav", sample_rate=None)
    assert r == 48000 and z.shape == x.shape
    # array resampler: same length rule
    w = audio.resample(x, 48000, SR)
    assert w.shape == (int(round(x.shape[0] * SR / 48000)), 2)


def test_channels_kept_are_the_ones_the_separator_uses(tmp_path):
    mono = tone(1.0, channels=1)
    audio.save(tmp_path / "mono.flac", mono, SR)
    y, _ = audio.load(tmp_path / "mono.flac")
    assert y.shape == (SR, 1)  # the separator duplicates mono itself
    six = tone(1.0, channels=6, amp=0.2)
    audio.save(tmp_path / "six.wav", six, SR, pcm="f32")
    y, _ = audio.load(tmp_path / "six.wav")  # the first two, as Spleeter's to_stereo
    np.testing.assert_array_equal(y, six[:, :2])
    y, _ = audio.load(tmp_path / "six.wav", max_channels=None)
    np.testing.assert_array_equal(y, six)
    y, _ = audio.load(tmp_path / "six.wav", sample_rate=48000)  # resampled with all channels, then cut
    z, _ = audio.load(tmp_path / "six.wav", sample_rate=48000, max_channels=None)
    np.testing.assert_array_equal(y, z[:, :2])


def _write_video(path, with_audio=True, seconds=2.0):
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = None
        if with_audio:
            a = c.add_stream("aac", rate=SR, layout="stereo")
        x = tone(seconds)
        for i in range(int(seconds * 25)):
            img = np.full((48, 64, 3), i * 4 % 255, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout="stereo")
            fr.sample_rate = SR
            fr.pts = 0
            for p in a.encode(fr):
                c.mux(p)
            for p in a.encode(None):
                c.mux(p)


def test_audio_of_a_video_file(tmp_path):
    _write_video(tmp_path / "clip.mp4")
    y, rate = audio.load(tmp_path / "clip.mp4")
    assert rate == SR and y.shape[1] == 2 and abs(y.shape[0] - 2 * SR) < 0.1 * SR
    assert abs(peak_freq(y[SR // 4: SR // 4 + 16384, 0], SR) - 440) < 5


def test_musdb_stem_mp4_streams():
    from tests.support import assets

    path = assets.musdb_excerpt()
    info = audio.probe(path)
    assert info.streams == 5 and info.sample_rate == SR and info.channels == 2
    streams = [audio.load(path, stream=k)[0] for k in range(5)]
    n = min(s.shape[0] for s in streams)
    assert 6.0 * SR < n < 6.3 * SR
    mix, stems = streams[0][:n], [s[:n] for s in streams[1:]]
    # the mixture is roughly the sum of drums, bass, other, vocals (each AAC-coded on its own; ~-15 dB apart)
    err = mix - sum(stems)
    assert np.sqrt(np.mean(err ** 2)) < 0.3 * np.sqrt(np.mean(mix ** 2))
    # same samples as the test assets' own PyAV decoder
    from tests.support import assets as _a
    np.testing.assert_array_equal(streams[0], _a.decode_streams(path)[0])
    part, _ = audio.load(path, offset=1.0, duration=2.0, stream=4)
    assert part.shape == (2 * SR, 2)
    np.testing.assert_allclose(part, streams[4][SR: 3 * SR], atol=1e-6)
    with pytest.raises(InputError, match="stream 7 does not exist"):
        audio.load(path, stream=7)


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "text", "no_audio", "directory", "truncated"])
def test_bad_inputs_raise_one_line_input_errors(tmp_path, case):
    path = tmp_path / f"{case}.mp3"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    elif case == "text":
        path = tmp_path / "notes.wav"
        path.write_text("this is not audio\n" * 100)
    elif case == "no_audio":
        path = tmp_path / "silent_video.mp4"
        _write_video(path, with_audio=False)
    elif case == "directory":
        path = tmp_path / "folder.wav"
        path.mkdir()
    elif case == "truncated":
        full = tmp_path / "full.flac"
        audio.save(full, tone(1.0), SR)
        path = tmp_path / "truncated.flac"
        path.write_bytes(full.read_bytes()[:60])  # header only
    with pytest.raises(InputError) as err:
        audio.load(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    expect = {"missing": "no such file", "empty": "empty", "no_audio": "no audio stream",
              "directory": "directory"}.get(case)
    if expect:
        assert expect in msg


def test_output_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(audio.OutputError):
        audio.save(blocker / "sub" / "x.wav", tone(0.1), SR)
    with pytest.raises(audio.OutputError, match="extension"):
        audio.save(tmp_path / "x.xyz", tone(0.1), SR)
    with pytest.raises(audio.OutputError, match="bitrate"):
        audio.save(tmp_path / "x.mp3", tone(0.1), SR, bitrate="lots")
    assert audio.parse_bitrate("128k") == 128000 and audio.parse_bitrate("1.5M") == 1_500_000


def test_written_files_get_normal_permissions(tmp_path):
    audio.save(tmp_path / "x.wav", tone(0.1), SR)
    mode = os.stat(tmp_path / "x.wav").st_mode & 0o777
    assert mode & 0o044  # readable by others per umask (mkstemp's 0600 is not kept)


def test_decoder_blocks_are_what_load_returns(tmp_path):
    x = tone(5.0, rate=48000)
    audio.save(tmp_path / "x.flac", x, 48000, pcm="s24")
    for kwargs in ({}, {"offset": 1.25, "duration": 2.5}, {"sample_rate": None, "offset": 0.5}):
        whole, rate = audio.load(tmp_path / "x.flac", **kwargs)
        dec = audio.Decoder(tmp_path / "x.flac", block_samples=10_000, **{"sample_rate": SR, **kwargs})
        blocks = list(dec.blocks())
        assert dec.rate == rate and all(b.shape[0] >= 10_000 for b in blocks[:-1])
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_stem_writer_commits_whole_files_or_nothing(tmp_path):
    x = tone(3.0)
    with audio.StemWriter(tmp_path / "a.flac", SR, 2, pcm="s24") as w:
        for i in range(0, x.shape[0], 30_000):
            w.write(x[i:i + 30_000])
            assert not (tmp_path / "a.flac").exists()  # only the hidden temporary file while writing
        w.commit()
    y, _ = audio.load(tmp_path / "a.flac")
    assert np.abs(y - x).max() <= 2 ** -23
    with pytest.raises(RuntimeError):
        with audio.StemWriter(tmp_path / "b.wav", SR, 2) as w:
            w.write(x)
            raise RuntimeError("the separator failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]
    with pytest.raises(audio.OutputExistsError):
        audio.StemWriter(tmp_path / "a.flac", SR, 2, overwrite=False)


@pytest.mark.parametrize("bits", [16, 24])
def test_integer_conversion_equals_the_float64_reference(bits):
    """The float32 fast path of the PCM conversion (stems are float32) gives exactly what float64 rounding gives:
    ties to even, full scale, clipping and its count."""
    rng = np.random.default_rng(bits)
    x = (1.3 * rng.standard_normal((200_000, 2))).astype(np.float32)
    x[:64] = np.float32(1) - np.float32(2.0 ** -24) * np.arange(128).reshape(64, 2)  # just below full scale
    ties = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (64, 2)).astype(np.float64) + 0.5
    x[64:128] = (ties / (1 << (bits - 1))).astype(np.float32)  # exactly halfway between two codes
    scale = float(1 << (bits - 1))
    y = np.clip(np.rint(x.astype(np.float64) * scale), -scale, scale - 1)
    want = y.astype(np.int16) if bits == 16 else y.astype(np.int32) << (32 - bits)
    got, clipped = audio._to_int(x, bits)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert clipped == int(np.count_nonzero(np.abs(np.rint(x.astype(np.float64) * scale) + 0.5) > scale))
