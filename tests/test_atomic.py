"""fastsep.atomic, the one way fastsep writes a file: never through a planted link, never a partial target, and
the temporary files of dead writers removed. Real files in tmp_path; only mkstemp's random names are fixed (to
plant a link at the name it tries first)."""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from fastsep import atomic
from fastsep.errors import ModelError

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks and pids")
DEAD_PID = 2**31 - 1  # above Linux's pid_max: no process has it


def names(folder) -> list:
    return sorted(p.name for p in folder.iterdir())


def age(path, seconds: float) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds), follow_symlinks=False)


@pytest.fixture
def first_temp_names(monkeypatch):
    """Make mkstemp try these random parts first, in order."""
    def use(*random_parts):
        monkeypatch.setattr(tempfile, "_name_sequence", iter(random_parts))
    return use


@posix_only
@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_planted_at_the_temp_name_is_never_followed(tmp_path, first_temp_names, dangling):
    out = tmp_path / "report.parquet"
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_bytes(b"precious")
    planted = tmp_path / f"{atomic.temp_prefix(out)}aaaaaaaa.part"
    planted.symlink_to(victim)
    first_temp_names("aaaaaaaa", "bbbbbbbb")
    atomic.write_atomically(out, b"report")
    assert out.read_bytes() == b"report" and not out.is_symlink()
    assert planted.is_symlink() and os.readlink(planted) == str(victim)  # left as it was, never written through
    if dangling:
        assert not victim.exists()  # O_EXCL: a dangling link's target is never created
    else:
        assert victim.read_bytes() == b"precious"
    assert set(names(tmp_path)) == {out.name, planted.name} | ({victim.name} if not dangling else set())


@posix_only
def test_a_link_planted_at_the_target_is_replaced_not_written_through(tmp_path):
    out, victim = tmp_path / "marker.json", tmp_path / "victim"
    victim.write_bytes(b"precious")
    out.symlink_to(victim)
    with atomic.atomic_path(out) as tmp:
        tmp.write_bytes(b"{}")
    assert victim.read_bytes() == b"precious"
    assert out.read_bytes() == b"{}" and not out.is_symlink()


@pytest.mark.parametrize("how", ["bytes writer", "path writer"])
def test_a_failed_write_leaves_the_target_untouched_and_no_temp_behind(tmp_path, how):
    out = tmp_path / "scores.json"
    out.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        if how == "bytes writer":
            atomic.write_atomically(out, fail)
        else:
            with atomic.atomic_path(out) as tmp, tmp.open("wb") as f:
                fail(f)
    assert out.read_bytes() == b"old"
    assert names(tmp_path) == [out.name]


def test_an_os_error_of_the_writer_becomes_the_callers_error(tmp_path):
    out = tmp_path / "model.onnx"
    with pytest.raises(ModelError, match=f"cannot write {out}: "):
        with atomic.atomic_path(out, error=ModelError) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    assert names(tmp_path) == []
    with pytest.raises(ModelError, match="cannot write .*missing"):  # no temp file can be created there
        with atomic.atomic_path(tmp_path / "missing" / "model.onnx", error=ModelError):
            pass


def test_without_overwrite_an_existing_target_is_never_replaced(tmp_path):
    out = tmp_path / "vocals.wav"
    out.write_bytes(b"theirs")
    fd, tmp = atomic.create_temp(out, ".part")
    os.write(fd, b"ours")
    os.close(fd)
    with pytest.raises(FileExistsError):
        atomic.commit(tmp, out, overwrite=False)
    assert out.read_bytes() == b"theirs"
    tmp.unlink()
    new = tmp_path / "drums.wav"
    fd, tmp = atomic.create_temp(new, ".part")
    os.close(fd)
    atomic.commit(tmp, new, overwrite=False)
    assert names(tmp_path) == ["drums.wav", "vocals.wav"]


@posix_only
def test_the_file_is_readable_as_the_umask_says(tmp_path):
    out = tmp_path / "model.safetensors"
    with atomic.atomic_path(out) as tmp:
        tmp.write_bytes(b"w")
    assert out.stat().st_mode & 0o777 == 0o666 & ~atomic.UMASK  # mkstemp's 0600 is not what the user asked


@posix_only
def test_stale_temps_of_dead_writers_are_removed_and_others_kept(tmp_path):
    out = tmp_path / "vocals.wav"
    dead = tmp_path / f".vocals.wav.{DEAD_PID}-abcdefgh.part"
    alive = tmp_path / f".vocals.wav.{os.getpid()}-abcdefgh.part"  # a concurrent writer of this process
    models_form = tmp_path / f".vocals.wav.{DEAD_PID}.abc.part"  # <pid>.<random>: models' older names
    old_unnamed = tmp_path / ".vocals.wav.abcdefgh.part"  # from before names held a pid: removed once a minute old
    young_unnamed = tmp_path / ".vocals.wav.ijklmnop.part"
    other_target = tmp_path / f".vocals.wav.x.wav.{DEAD_PID}-abcdefgh.part"  # "vocals.wav.x.wav"'s
    other_suffix = tmp_path / f".vocals.wav.{DEAD_PID}-abcdefgh.tmp"
    for p in (dead, alive, models_form, old_unnamed, young_unnamed, other_target, other_suffix):
        p.write_bytes(b"x")
    age(old_unnamed, 3600)
    atomic.remove_stale_temps(out, ".part")
    assert set(names(tmp_path)) == {alive.name, young_unnamed.name, other_target.name, other_suffix.name}


@posix_only
def test_a_dead_writers_temp_waits_for_the_age_asked(tmp_path):
    out = tmp_path / "model.bin"
    fresh = tmp_path / f".model.bin.{DEAD_PID}-aaaaaaaa.tmp"
    old = tmp_path / f".model.bin.{DEAD_PID}-bbbbbbbb.tmp"
    for p in (fresh, old):
        p.write_bytes(b"x")
    age(old, 3600)
    with atomic.atomic_path(out, dead_age_s=60) as tmp:  # removes stale temps once committed
        tmp.write_bytes(b"model")
    assert set(names(tmp_path)) == {out.name, fresh.name}


@posix_only
def test_stale_temps_are_removed_never_through_a_link(tmp_path):
    victim = tmp_path / "keep" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"precious")
    link = tmp_path / f".vocals.wav.{DEAD_PID}-abcdefgh.part"
    link.symlink_to(victim)
    age(link, 3600)
    atomic.remove_stale_temps(tmp_path / "vocals.wav", ".part")
    assert not link.is_symlink() and victim.read_bytes() == b"precious"  # the link went, not what it names


def test_a_scratch_file_is_new_and_gone_after_its_block(tmp_path):
    with atomic.scratch_file(tmp_path, ".2stems.tar.gz.part-") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".2stems.tar.gz.part-") and tmp.stat().st_size == 0
        tmp.write_bytes(b"archive")
    assert names(tmp_path) == []
