"""Hostile and careless catalogues: `fastsep catalogue` never removes or rewrites an input, finds collisions on real
paths, walks folder links without loops and within a cap, puts a deadline on every remote call and every wait for
a worker (and stays interruptible), costs one failed row per bad entry, ends on SIGTERM as on SIGINT, checks name
lengths in the plan, and writes its report and markers as the umask says.

Real files, a real local Ray (2 CPUs) where workers run, the real CLI in a subprocess where exit status, signals
or the process's exit matter. Remote file systems are an S3 endpoint on a local port that accepts connections and
never answers (never a real external address)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from fastsep import audio, cli  # noqa: E402
from fastsep.catalogue import (MARKER_FOLDER, REPORT_NAME, Options, find_tracks, marker_path, plan,  # noqa: E402
                               run_catalogue, separate_track, write_report)
from fastsep.errors import UsageError  # noqa: E402
from fastsep.models import config as configs  # noqa: E402
from fastsep.models.weights import save_model  # noqa: E402

STEMS = ("a", "b")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.support.weights import random_weights

    cfg = configs.from_spleeter_params({
        "instrument_list": list(STEMS), "F": 64, "T": 64,
        "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}, "tiny")
    return save_model(tmp_path_factory.mktemp("m") / "tiny.safetensors", cfg, random_weights(cfg, seed=5))


@pytest.fixture(scope="module")
def ray_cluster():
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


def song(path, seconds=0.3, seed=0):
    path = os.fsdecode(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    x = (0.1 * np.random.default_rng(seed).standard_normal((int(44100 * seconds), 2))).astype(np.float32)
    audio.save(path, x, 44100)
    return path


def env(**extra):
    e = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    e.update(extra)
    return e


def run_cli(*args, timeout=120, **extra):
    return subprocess.run([sys.executable, "-m", "fastsep", *map(str, args)], env=env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(text: str) -> str:
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsep: error:"), text
    return lines[0]


def failed_rows(rows) -> dict:
    return {os.path.basename(r["path"]): r["error"] for r in rows if r["status"] == "failed"}


@pytest.fixture
def blackhole():
    """An S3 endpoint that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()  # queued connections are reset: a call still waiting on them ends


def s3_uri(sock, key="bucket/x.wav"):
    return f"s3://{key}?endpoint_override=127.0.0.1:{sock.getsockname()[1]}&scheme=http"


# ----------------------------------------------------------------------------- 1, 3: outputs never replace inputs


def test_an_input_inside_out_is_refused_and_left_alone(tiny, tmp_path, capsys):
    out = tmp_path / "stems"
    victim = song(out / "vocals" / "vocals.wav")  # `catalogue stems/vocals/vocals.wav -o stems`
    before = open(victim, "rb").read()
    assert cli.main(["catalogue", "-q", victim, "-o", str(out), "-p", str(tiny),
                     "-f", "{filename}/{instrument}.wav"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert victim in line and "inside the output folder" in line
    assert open(victim, "rb").read() == before
    # a link outside OUT to it is the same file: refused too
    os.symlink(victim, tmp_path / "alias.wav")
    assert cli.main(["catalogue", "-q", str(tmp_path / "alias.wav"), "-o", str(out), "-p", str(tiny)]) == 2
    assert "inside the output folder" in one_error_line(capsys.readouterr().err)

    # in a manifest: that entry fails alone, with the reason; the others are planned
    other = song(tmp_path / "lib" / "other.wav")
    (tmp_path / "list.txt").write_text(f"{victim}\n{other}\n")
    jobs, failed = plan(find_tracks([tmp_path / "list.txt"], out), out, STEMS, Options(), "m")
    assert [j.track.path for j in jobs] == [other]
    assert len(failed) == 1 and "inside the output folder" in failed[0]["error"] and victim in failed[0]["error"]
    assert open(victim, "rb").read() == before


def test_an_output_that_is_an_input_is_refused_by_planner_and_worker(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    src = song(lib / "song.wav")
    before = open(src, "rb").read()
    os.makedirs(out / "song")
    os.link(src, out / "song" / "a.wav")  # its own stem's path holds the input (a hard link)
    jobs, failed = plan(find_tracks([lib], out), out, STEMS, Options(), "m")
    assert not jobs and "is the input" in failed[0]["error"]

    # planned before the link appeared: the worker checks again before removing anything
    os.unlink(out / "song" / "a.wav")
    (job,), _ = plan(find_tracks([lib], out), out, STEMS, Options(), "m")
    os.link(src, job.outputs["a"])
    row = separate_track(None, job)
    assert row["status"] == "failed" and "is the input" in row["error"]
    assert os.path.samefile(job.outputs["a"], src) and open(src, "rb").read() == before


def test_collisions_are_found_on_real_paths(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    song(lib / "a" / "s.wav")
    song(lib / "b" / "s.wav", seed=1)
    os.makedirs(out / "a")
    os.symlink("a", out / "b")  # OUT/b -> a: lib/a/s.wav and lib/b/s.wav would write the same stems
    jobs, failed = plan(find_tracks([lib], out), out, STEMS, Options(), "m")
    assert len(jobs) == 1 and len(failed) == 1 and "would overwrite those of" in failed[0]["error"]


# ----------------------------------------------------------------------------------------- 5: folder links


def test_folder_link_loops_are_walked_once_and_bounded(tmp_path):
    lib = tmp_path / "lib"
    song(lib / "x" / "song.wav")
    os.symlink("..", lib / "x" / "up")  # a loop
    os.symlink(".", lib / "x" / "self")  # a second loop: the listing grew exponentially
    os.symlink("x", lib / "y")  # a second way to the same folder
    out = tmp_path / "out"
    script = ("import json, resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
              "from fastsep.catalogue import find_tracks\n"
              "print(json.dumps([t.relative for t in find_tracks([sys.argv[1]], sys.argv[2])]))\n")
    r = subprocess.run([sys.executable, "-c", script, str(lib), str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["x/song.wav"]


def test_the_listing_is_capped_with_a_clear_message(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    for i in range(8):
        (lib / f"d{i}").mkdir(parents=True)
        (lib / f"d{i}" / "s.wav").write_bytes(b"")
    monkeypatch.setenv("FASTSEP_MAX_ENTRIES", "5")
    with pytest.raises(UsageError, match="FASTSEP_MAX_ENTRIES"):
        find_tracks([lib], tmp_path / "out")
    monkeypatch.setenv("FASTSEP_MAX_ENTRIES", "100")
    assert len(find_tracks([lib], tmp_path / "out")) == 8


# ------------------------------------------------------------------------------ 6: deadlines, interruptible


def test_an_unreachable_remote_input_ends_at_its_deadline(tiny, tmp_path, blackhole):
    r = run_cli("catalogue", s3_uri(blackhole), "-o", tmp_path / "out", "-p", tiny, timeout=60,
                FASTSEP_REMOTE_TIMEOUT="0.5")
    assert r.returncode == 2
    assert "FASTSEP_REMOTE_TIMEOUT" in one_error_line(r.stderr)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_blocked_remote_call_stays_interruptible(signum, tiny, tmp_path, blackhole):
    p = subprocess.Popen([sys.executable, "-m", "fastsep", "catalogue", s3_uri(blackhole), "-o",
                          str(tmp_path / "out"), "-p", str(tiny)], env=env(FASTSEP_REMOTE_TIMEOUT="600"),
                         stderr=subprocess.PIPE, text=True)
    try:
        blackhole.settimeout(60)
        conn, _ = blackhole.accept()  # the S3 client is now waiting for an answer that never comes
        p.send_signal(signum)
        _, err = p.communicate(timeout=180)  # a hang fails; a loaded machine may be slow
        conn.close()
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def test_remote_and_unsupported_manifest_entries_fail_alone(tmp_path, blackhole, monkeypatch):
    for k, v in env(FASTSEP_REMOTE_TIMEOUT="0.5").items():
        monkeypatch.setenv(k, v)
    good = song(tmp_path / "lib" / "good.wav")
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"{good}\n{s3_uri(blackhole, 'bucket/far.wav')}\nnosuchfs://host/odd.wav\n")
    out = tmp_path / "out"
    jobs, failed = plan(find_tracks([manifest], out), out, STEMS, Options(), "m")
    assert [j.track.path for j in jobs] == [good]
    errors = sorted(r["error"] for r in failed)
    assert len(errors) == 2
    assert "FASTSEP_REMOTE_TIMEOUT" in errors[1] and "far.wav" in errors[1]
    assert "nosuchfs" in errors[0]


def test_a_cluster_address_where_nothing_answers_is_one_line(tiny, tmp_path):
    song(tmp_path / "lib" / "s.wav")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        r = run_cli("catalogue", tmp_path / "lib", "-o", tmp_path / "out", "-p", tiny, "-q", "--ray",
                    f"127.0.0.1:{closed.getsockname()[1]}", timeout=60)
    finally:
        closed.close()
    assert r.returncode == 2
    assert "nothing answers" in one_error_line(r.stderr)


def test_a_worker_that_cannot_be_placed_fails_fast_with_why(tiny, tmp_path):
    """--ray local: the cluster started here can never hold the worker: one line, before any wait."""
    song(tmp_path / "lib" / "s.wav")
    p = subprocess.Popen([sys.executable, "-m", "fastsep", "catalogue", str(tmp_path / "lib"), "-o",
                          str(tmp_path / "out"), "-p", str(tiny), "-q", "--cpus-per-worker", "64"], env=env(),
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 2
    assert "Traceback" not in err
    assert "64 CPUs" in err.strip().splitlines()[-1]  # (Ray itself may log a warning as it starts)


def test_a_joined_cluster_that_cannot_place_a_worker_ends_at_the_deadline(ray_cluster, tiny, tmp_path,
                                                                          monkeypatch):
    """A joined cluster (it may autoscale) gets FASTSEP_WORKER_START_TIMEOUT to place the first worker."""
    song(tmp_path / "lib" / "s.wav")
    monkeypatch.setenv("FASTSEP_WORKER_START_TIMEOUT", "1")
    error = in_thread(lambda: run_catalogue([tmp_path / "lib"], tmp_path / "out", tiny, workers=1,
                                            gpus_per_worker=1))
    assert isinstance(error, UsageError), error
    assert "FASTSEP_WORKER_START_TIMEOUT" in str(error) and "1 GPUs" in str(error)


def in_thread(fn, timeout=180):
    """fn() in a thread: a run that never ends fails the test instead of hanging the suite."""
    outcome = []

    def run():
        try:
            outcome.append(fn())
        except Exception as e:  # noqa: BLE001
            outcome.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert outcome, "the run did not end"
    return outcome[0]


def test_workers_the_cluster_cannot_place_hold_no_tracks(ray_cluster, tiny, tmp_path):
    """--workers 4 of 1 CPU each on 2 CPUs: two workers are never placed, and the two others take every track
    (more tracks than the placed workers' slots, so that the unplaced ones would be handed some)."""
    for i in range(10):
        song(tmp_path / "lib" / f"s{i}.wav", seed=i)
    summary = in_thread(lambda: run_catalogue([tmp_path / "lib"], tmp_path / "out", tiny, workers=4), timeout=120)
    assert not isinstance(summary, Exception), summary
    assert (summary.count("ok"), summary.failed) == (10, 0)


# ---------------------------------------------------------------------------------- 10: one entry, one row


def test_a_name_that_is_not_utf8_is_one_failed_row(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    good = song(lib / "good.wav")
    song(os.path.join(os.fsencode(lib), b"bad\xff.wav"))
    tracks = find_tracks([lib], out)
    jobs, failed = plan(tracks, out, STEMS, Options(), "m")
    assert [j.track.path for j in jobs] == [good]
    assert len(failed) == 1 and "not valid UTF-8" in failed[0]["error"] and "\\xff" in failed[0]["path"]
    out.mkdir()
    write_report(failed, out / REPORT_NAME)
    assert pq.read_table(out / REPORT_NAME).column("path").to_pylist() == [failed[0]["path"]]


def test_outputs_that_cannot_be_removed_fail_their_track_only(ray_cluster, tiny, tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for name in ("one", "two", "three"):
        song(lib / f"{name}.wav")
    (out / "one" / "a.wav" / "x").mkdir(parents=True)  # an old stem path that unlink cannot remove
    three = next(t for t in find_tracks([lib], out) if t.relative == "three.wav")
    (marker_path(out, three) / "x").mkdir(parents=True)  # nor an old marker
    summary = run_catalogue([lib], out, tiny, workers=1)
    assert {os.path.basename(r["path"]): r["status"] for r in summary.rows} == {
        "one.wav": "failed", "two.wav": "ok", "three.wav": "failed"}
    errors = failed_rows(summary.rows)
    assert "cannot remove" in errors["one.wav"] and "a.wav" in errors["one.wav"]
    assert "cannot remove" in errors["three.wav"]
    assert all((out / "two" / f"{s}.wav").is_file() for s in STEMS)
    assert len(pq.read_table(out / REPORT_NAME)) == 3


def test_manifests_are_read_as_users_write_them(tmp_path):
    lib, lists, out = tmp_path / "lib", tmp_path / "lists", tmp_path / "out"
    first = song(lib / "x" / "song.wav")
    inner = song(lib / "album" / "cd1" / "t1.flac")
    hidden = song(lib / "x" / ".hidden.wav")
    lists.mkdir()
    os.symlink(lib / "x", tmp_path / "alias")
    (lists / "m.txt").write_text("\n".join([
        "../lib/x/song.wav",  # '..' entries are resolved
        "../lib/x/./song.wav", first, str(tmp_path / "alias" / "song.wav"), "file://" + first,  # one file, 5 ways
        "../lib/album",  # a folder: its audio files
        "../lib/x/.hidden.wav",  # listed explicitly: kept
        "../lib/notes",  # a folder without audio: reported as such
    ]) + "\n")
    (lib / "notes").mkdir()
    (lib / "notes" / "liner.txt").write_text("notes")
    jobs, failed = plan(find_tracks([lists / "m.txt"], out), out, STEMS, Options(), "m")
    assert len(failed) == 1 and "a folder with no audio files" in failed[0]["error"], failed
    assert sorted(os.path.realpath(j.track.path) for j in jobs) == sorted(map(os.path.realpath, [first, inner, hidden]))
    assert all(os.path.realpath(p).startswith(str(out.resolve()) + os.sep) for j in jobs for p in j.outputs.values())


def test_entries_that_are_not_regular_files_fail_alone(tmp_path):
    """A FIFO would block its worker forever and a device never ends: refused in the plan, one row each."""
    good = song(tmp_path / "lib" / "good.wav")
    os.mkfifo(tmp_path / "lib" / "pipe.wav")
    (tmp_path / "list.txt").write_text(f"{good}\n{tmp_path / 'lib' / 'pipe.wav'}\n/dev/zero\n")
    jobs, failed = plan(find_tracks([tmp_path / "list.txt"], tmp_path / "out"), tmp_path / "out", STEMS,
                        Options(), "m")
    assert [j.track.path for j in jobs] == [good]
    assert sorted(failed_rows(failed)) == ["pipe.wav", "zero"]
    assert all("not a regular file" in e for e in failed_rows(failed).values())


def test_path_columns_of_other_types(tmp_path, capsys, tiny):
    lib = tmp_path / "lib"
    named = str(lib / "01")  # a file name CSV type inference would make a number
    os.rename(song(lib / "01.wav"), named)
    (lib / "list.csv").write_text("id,path\n1,01\n")
    assert [t.path for t in find_tracks([lib / "list.csv"], tmp_path / "out")] == [named]
    pq.write_table(pa.table({"path": pa.array([os.fsencode(named)], pa.binary())}), lib / "bytes.parquet")
    assert [t.path for t in find_tracks([lib / "bytes.parquet"], tmp_path / "out")] == [named]
    pq.write_table(pa.table({"path": [1, 2]}), lib / "ints.parquet")
    assert cli.main(["catalogue", "-q", str(lib / "ints.parquet"), "-o", str(tmp_path / "out"), "-p", str(tiny)]) == 2
    assert "int64" in one_error_line(capsys.readouterr().err)


def test_an_output_folder_that_is_an_input_folder_is_refused(tiny, tmp_path, capsys):
    lib = tmp_path / "lib"
    song(lib / "s.wav")
    for argv in ([str(lib), "-o", str(lib)], [str(lib / "sub"), "-o", str(lib)], [str(lib / "*.wav"), "-o", str(lib)]):
        (lib / "sub").mkdir(exist_ok=True)
        song(lib / "sub" / "t.wav")
        assert cli.main(["catalogue", "-q", *argv, "-p", str(tiny)]) == 2
        assert "output folder" in one_error_line(capsys.readouterr().err)
    assert not (lib / REPORT_NAME).exists()


# ---------------------------------------------------------------------------------------------- 11: SIGTERM


def test_sigterm_ends_a_run_as_sigint_does(tiny, tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for i in range(12):
        song(lib / f"s{i:02d}.wav", seconds=20, seed=i)
    p = subprocess.Popen([sys.executable, "-m", "fastsep", "catalogue", str(lib), "-o", str(out), "-p", str(tiny),
                          "--workers", "1"], env=env(), stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for _ in range(1800):  # until the first track is complete (at most 3 minutes)
            if list((out / MARKER_FOLDER).rglob("*.json")) or p.poll() is not None:
                break
            threading.Event().wait(0.1)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode in (130, 143), err
    assert "Traceback" not in err
    rows = pq.read_table(out / REPORT_NAME).to_pylist()
    done = {os.path.basename(r["path"])[:-4] for r in rows if r["status"] == "ok"}
    assert done and len(done) < 12
    assert not [q for q in out.rglob("*") if q.name.endswith(".part")]
    # every track with a stem left is a complete one: unfinished stems were discarded
    assert {q.parent.name for q in out.rglob("*.wav")} == done
    assert len(list((out / MARKER_FOLDER).rglob("*.json"))) == len(done)


# ------------------------------------------------------------------------------------------- 13: name lengths


@pytest.mark.parametrize("fmt", ["{filename}/" + "d" * 256 + "/{instrument}.{codec}",
                                 "{filename}/{instrument}" + "x" * 240 + ".{codec}"])  # fits, its temp name not
def test_names_too_long_are_refused_in_the_plan(fmt, tiny, tmp_path, capsys):
    src = song(tmp_path / "lib" / "s.wav")
    out = tmp_path / "out"
    assert cli.main(["separate", "-q", "-p", str(tiny), "-o", str(out), "-f", fmt, src]) == 2
    assert "bytes" in one_error_line(capsys.readouterr().err)
    assert not out.exists()
    jobs, failed = plan(find_tracks([tmp_path / "lib"], out), out, STEMS, Options(filename_format=fmt), "m")
    assert not jobs and "bytes" in failed[0]["error"]


def test_an_output_folder_name_too_long_is_one_line(tiny, tmp_path, capsys):
    src = song(tmp_path / "lib" / "s.wav")
    for command in ("separate", "catalogue"):
        assert cli.main([command, "-q", "-p", str(tiny), "-o", str(tmp_path / ("o" * 300)), src]) == 2
        assert "bytes" in one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------ 14: umask


def test_report_and_markers_follow_the_umask(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    song(lib / "s.wav")
    script = ("import os, sys\n"
              "os.umask(0o002)\n"
              "from pathlib import Path\n"
              "from fastsep.catalogue import Options, find_tracks, plan, write_report, write_marker as _write_marker\n"
              "out = Path(sys.argv[2]); out.mkdir()\n"
              "(job,), _ = plan(find_tracks([sys.argv[1]], out), out, ('a', 'b'), Options(), 'm')\n"
              "_write_marker(job, 1.0)\n"
              "write_report([], out / '_fastsep_report.parquet')\n"
              "print(job.marker)\n")
    r = subprocess.run([sys.executable, "-c", script, str(lib), str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for path in (r.stdout.strip(), out / REPORT_NAME):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o664, path
