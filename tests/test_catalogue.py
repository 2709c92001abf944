"""fastsep catalogue: Ray workers over real files - stems equal `fastsep separate`'s, failures reported, reruns skip
complete tracks, a killed worker's track is retried whole, manifests of file:// URIs (local Ray, 2 CPUs)."""

import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from tests.support import assets  # noqa: E402
from tests.support.weights import random_weights  # noqa: E402
from fastsep import audio, cli  # noqa: E402
from fastsep.catalogue import (MARKER_FOLDER, REPORT_NAME, Options, find_tracks, plan,  # noqa: E402
                               run_catalogue)
from fastsep.errors import UsageError  # noqa: E402
from fastsep.models import config as configs  # noqa: E402
from fastsep.models.weights import save_model  # noqa: E402

GOOD = ("album1/mix.wav", "album1/cd2/remix.flac", "album2/bass_other.mp3", "vocals.m4a")
BAD = ("album1/broken.mp3", "album2/empty.wav")


@pytest.fixture(scope="module")
def ray_cluster():
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    cfg = configs.from_spleeter_params({
        "instrument_list": ["a", "b"], "F": 64, "T": 64,
        "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}, "tiny")
    return save_model(tmp_path_factory.mktemp("m") / "tiny.safetensors", cfg, random_weights(cfg, seed=5))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Four real tracks made from the MUSDB excerpt (wav, flac, mp3, m4a) in nested folders, and two bad files."""
    root = tmp_path_factory.mktemp("library")
    stems = assets.excerpt_stems()
    tracks = [stems["mix"], stems["drums"] + stems["vocals"], stems["bass"] + stems["other"], stems["vocals"]]
    for name, x in zip(GOOD, tracks):
        audio.save(root / name, x, 44100)
    (root / BAD[0]).write_bytes(b"not audio at all " * 64)
    (root / BAD[1]).write_bytes(b"")
    return root


def _stems_of(out, relative, instruments):
    folder = out / os.path.dirname(relative) / os.path.splitext(os.path.basename(relative))[0]
    return {i: folder / f"{i}.wav" for i in instruments}


def _identity(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def _report(out):
    return {os.path.basename(r["path"]): r for r in pq.read_table(out / REPORT_NAME).to_pylist()}


def test_stems_equal_separate_failures_reported_reruns_skip(ray_cluster, library, model_2stems, tmp_path):
    out = tmp_path / "out"
    summary = run_catalogue([library], out, model_2stems, workers=2)
    assert (summary.count("ok"), summary.failed) == (4, 2)
    report = _report(out)
    assert {n: r["status"] for n, r in report.items()} == {
        "mix.wav": "ok", "remix.flac": "ok", "bass_other.mp3": "ok", "vocals.m4a": "ok",
        "broken.mp3": "failed", "empty.wav": "failed"}
    assert "not a readable audio" in report["broken.mp3"]["error"] and "empty" in report["empty.wav"]["error"]
    assert report["mix.wav"]["audio_seconds"] == pytest.approx(268_288 / 44100, abs=0.01)

    # the same files through `fastsep separate`: identical stems
    separated = tmp_path / "separate"
    assert cli.main(["separate", "-q", "-p", str(model_2stems), "-o", str(separated),
                     *[str(library / g) for g in GOOD]]) == 0
    for g in GOOD:
        for inst, path in _stems_of(out, g, ("vocals", "accompaniment")).items():
            want, _ = audio.load(separated / os.path.splitext(os.path.basename(g))[0] / f"{inst}.wav")
            got, _ = audio.load(path)
            np.testing.assert_array_equal(got, want)
    assert not list(out.rglob("*.part")) and not (out / "album1" / "broken").exists()

    # a rerun (through the CLI, exit 1: the bad files fail again) writes nothing
    before = {p: _identity(p) for p in out.rglob("*.wav")}
    assert len(before) == 8
    assert cli.main(["catalogue", "-q", str(library), "-o", str(out), "-p", str(model_2stems), "--workers", "2"]) == 1
    assert {p: _identity(p) for p in out.rglob("*.wav")} == before
    assert {n: r["status"] for n, r in _report(out).items() if r["status"] != "failed"} == {
        "mix.wav": "skipped", "remix.flac": "skipped", "bass_other.mp3": "skipped", "vocals.m4a": "skipped"}

    # touching one input redoes that one only
    touched = library / GOOD[2]
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    summary = run_catalogue([library], out, model_2stems, workers=2)
    assert [os.path.basename(r["path"]) for r in summary.rows if r["status"] == "ok"] == ["bass_other.mp3"]
    after = {p: _identity(p) for p in out.rglob("*.wav")}
    redone = {p for p in before if after[p] != before[p]}
    assert redone == set(_stems_of(out, GOOD[2], ("vocals", "accompaniment")).values())


def _worker_pids(method="separate"):
    """Pids of Ray worker processes running CatalogueWorker.<method> now (Ray names them in their command line)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if cmdline.startswith(f"ray::CatalogueWorker.{method}".encode()):
                pids.append(int(entry))
    return pids


def test_killed_worker_track_is_retried_whole(ray_cluster, tiny_model, tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "in"
    for i in range(6):
        audio.save(src / f"song{i}.flac", (0.2 * rng.standard_normal((44100 * 40, 2))).astype(np.float32), 44100)
    out = tmp_path / "out"
    killed = []

    def kill_one_busy_worker():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            pids = _worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    summary = run_catalogue([src], out, tiny_model, workers=2, retries=2)
    killer.join()
    assert killed, "no worker was running a track to kill"
    assert (summary.count("ok"), summary.failed) == (6, 0)
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    for i in range(6):
        for inst in ("a", "b"):
            x, rate = audio.load(out / f"song{i}" / f"{inst}.wav")
            assert (x.shape[0], rate) == (44100 * 40, 44100)
    assert len(list((out / MARKER_FOLDER).rglob("*.json"))) == 6


def test_manifests_of_file_uris(ray_cluster, library, tiny_model, tmp_path):
    import pyarrow as pa

    manifests = tmp_path / "lists"
    manifests.mkdir()
    (manifests / "a.txt").write_text(f"# two tracks\n{(library / GOOD[0]).as_uri()}\n\n"
                                     f"{(library / GOOD[1]).as_uri()}\n")
    pq.write_table(pa.table({"path": [(library / GOOD[3]).as_uri(), str(library / "album1" / "gone.wav")],
                             "artist": ["x", "y"]}), manifests / "b.parquet")
    (manifests / "c.csv").write_text(f"id,path\n1,{library / GOOD[2]}\n")
    out = tmp_path / "out"
    summary = run_catalogue([manifests / "a.txt", manifests / "b.parquet", manifests / "c.csv"], out, tiny_model,
                            workers=2)
    statuses = {os.path.basename(r["path"]): r["status"] for r in summary.rows}
    assert statuses == {"mix.wav": "ok", "remix.flac": "ok", "vocals.m4a": "ok", "gone.wav": "failed",
                        "bass_other.mp3": "ok"}
    # outputs mirror each manifest's entries below their common folder (album1/ for a.txt, the library for b)
    stems = sorted(str(p.relative_to(out)) for p in out.rglob("*.wav"))
    assert stems == sorted(f"{folder}/{stem}.wav" for folder in ("mix", "cd2/remix", "vocals", "bass_other")
                           for stem in ("a", "b"))


def test_inputs_and_plan_without_ray(library, tiny_model, tmp_path):
    out = library / "out"  # inside the library: never read back as input
    (library / ".hidden.wav").write_bytes(b"")
    (library / "album1" / "notes.txt").write_text("liner notes")
    found = sorted(t.relative for t in find_tracks([library], out))
    assert found == sorted(GOOD + BAD)
    assert [t.relative for t in find_tracks([str(library / "album1" / "*.mp3")], out)] == ["broken.mp3"]
    assert sorted(t.relative for t in find_tracks([str(library / "**" / "*.wav")], out)) == [
        "album1/mix.wav", "album2/empty.wav"]
    with pytest.raises(UsageError, match="does not exist"):
        find_tracks([library / "nothing"], out)

    # two inputs mapped to the same stems: the second fails alone; other options make another key
    twin = tmp_path / "twin"
    twin.mkdir()
    audio.save(twin / "song.wav", np.zeros((4410, 2), np.float32), 44100)
    audio.save(twin / "song.flac", np.zeros((4410, 2), np.float32), 44100)
    jobs, failed = plan(find_tracks([twin], out), out, ("a", "b"), Options(), "m")
    assert len(jobs) == 1 and "would overwrite those of" in failed[0]["error"]
    other, _ = plan(find_tracks([twin], out), out, ("a", "b"), Options(codec="flac"), "m")
    assert other[0].key != jobs[0].key and other[0].marker == jobs[0].marker


def test_usage_errors_are_one_line(tiny_model, tmp_path, capsys):
    bad_manifest = tmp_path / "list.csv"
    bad_manifest.write_text("file\nx.wav\n")
    for argv, message in [([str(tmp_path / "missing")], "does not exist"),
                          ([str(bad_manifest)], "has no 'path' column"),
                          ([str(tmp_path), "-c", "aiff"], "unknown codec")]:
        assert cli.main(["catalogue", *argv, "-o", str(tmp_path / "o"), "-p", str(tiny_model)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()
