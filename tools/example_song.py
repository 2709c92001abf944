"""Fetch a real song to try fastsep on: the MUSDB18 excerpt that PyPI's stempeg 0.2.6 wheel ships.

    python tools/example_song.py example.mp4

"The Easton Ellises - Falcon 69" (6.1 s, MUSDB18 sample): a .stem.mp4 whose first audio stream is the mix; the
other four are its drums, bass, other and vocals (what `fastsep evaluate` compares against). The wheel is only
downloaded and unzipped, never installed.
"""

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MEMBER = "stempeg/data/The Easton Ellises - Falcon 69.stem.mp4"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               "--disable-pip-version-check", "stempeg==0.2.6", "-d", tmp]
        if subprocess.run(cmd).returncode:
            print("error: could not download the stempeg wheel from PyPI", file=sys.stderr)
            return 1
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
