"""Numeric options that would hang, allocate without bound or fail deep inside are refused up front (exit 2)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastsep

PKG_ROOT = str(Path(fastsep.__file__).resolve().parents[1])


def fastsep_cli(*args):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "fastsep", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("args,match", [
    (["--seconds", "nan"], "--seconds"),
    (["--seconds", "1e12"], "--seconds"),
    (["--seconds", "-1"], "--seconds"),
    (["--runs", "0"], "--runs"),
    (["--batch-segments", "0"], "--batch-segments"),
    (["--batch-segments", "100000"], "--batch-segments"),
])
def test_bench_refuses_unbounded_arguments(args, match):
    r = fastsep_cli("bench", "-p", "no-such-model-is-loaded-first", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_control_characters_in_file_names_stay_on_one_line(tmp_path):
    bad = tmp_path / "a\nfake: done\x1b[2J.wav"
    bad.write_bytes(b"not audio at all")
    r = fastsep_cli("separate", "-p", "2stems", "-o", tmp_path / "out", bad)
    assert r.returncode == 1, r.stderr
    assert "\x1b" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "a\\x0afake: done\\x1b[2J.wav" in errors[0], r.stderr
    assert not any(line.startswith("fake: done") for line in r.stderr.splitlines())
