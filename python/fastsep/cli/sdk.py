"""`fastsep sdk`: where the C SDK installed with this package is (docs/c_api.md)."""

from __future__ import annotations

import pathlib
import sys

from ..console import Console
from ..errors import FastsepError
from .exits import EXIT_OK

# --FLAG: (folder under the package, the file that must be in it, help)
SDK_DIRS = {
    "cmake-dir": ("lib/cmake/fastsep", "fastsepConfig.cmake", "the folder of fastsepConfig.cmake (find_package)"),
    "pkg-config-dir": ("lib/pkgconfig", "fastsep.pc", "the folder of fastsep.pc (PKG_CONFIG_PATH)"),
    "include-dir": ("include", "fastsep.h", "the folder of fastsep.h"),
    "lib-dir": ("lib", "libfastsep.so", "the folder of libfastsep.so"),
}


def add_parser(sub, common) -> None:
    sk = sub.add_parser("sdk", parents=[common],
                        help="where the C API's header, library, CMake and pkg-config files are",
                        description="Print a folder of the C SDK installed with this package (docs/c_api.md): "
                                    "cmake -DCMAKE_PREFIX_PATH=\"$(fastsep sdk --cmake-dir)\" ..., or "
                                    "PKG_CONFIG_PATH=\"$(fastsep sdk --pkg-config-dir)\" pkg-config --cflags --libs "
                                    "fastsep.")
    where = sk.add_mutually_exclusive_group(required=True)
    for flag, what in SDK_DIRS.items():
        where.add_argument(f"--{flag}", dest="sdk_dir", action="store_const", const=flag, help=what[2])


def package_folder() -> pathlib.Path:
    """The installed fastsep folder, the one above the cli package (read from fastsep.cli.__file__ when asked, so
    that a test can point it at an empty folder)."""
    return pathlib.Path(sys.modules[__package__].__file__).resolve().parents[1]


def run(args, con: Console) -> int:
    """One folder of the C SDK that the wheel carries inside the package (CMakeLists.txt, cmake/fastsep_sdk.cmake)."""
    sub, required, _ = SDK_DIRS[args.sdk_dir]
    if sys.platform == "darwin" and required.endswith(".so"):
        required = required[:-3] + ".dylib"
    folder = package_folder() / sub
    if not (folder / required).is_file():
        raise FastsepError(f"the C SDK is not installed with this fastsep ({folder / required} is missing): it is "
                           "built only where OpenVINO's C++ runtime is found at build time")
    print(folder)  # stdout, for $(fastsep sdk ...); messages go to stderr
    return EXIT_OK
